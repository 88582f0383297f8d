"""Masked training of the conditional noise predictor (CSDI, Tashiro et al. 2021, Algorithm 1).

Each step: pick a batch of windows, draw a conditioning mask inside the observed entries with the
configured strategy, and minimise the chosen objective on the remaining observed entries (the
targets). Adds what the reference lacks: EMA weights, a best-validation checkpoint, exact resume
from the last checkpoint, a wall-time limit, and per-epoch tracking.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from csdi import checkpoint
from csdi.config import DiffusionConfig, TrainConfig
from csdi.data.masking import make_cond_mask
from csdi.data.windows import WindowSet
from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.losses import get_objective
from csdi.diffusion.schedule import NoiseSchedule

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """cpu | cuda | auto (cuda when available); cuda asked for but absent is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose cpu, cuda or auto")
    return torch.device(name)


@dataclass(frozen=True)
class ModelBatch:
    """Windows in model layout: values, observed, cond (N, K, L) (cond may be None); timestamps
    (N, L)."""

    values: Tensor
    observed: Tensor
    timestamps: Tensor
    cond: Tensor | None

    @classmethod
    def from_windows(cls, w: WindowSet, device: torch.device) -> ModelBatch:
        def kl(a: np.ndarray) -> Tensor:  # (N, L, K) → (N, K, L)
            return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 2, 1))).to(device)

        return cls(
            values=kl(w.values.astype(np.float32)),
            observed=kl(w.observed.astype(np.float32)),
            timestamps=torch.from_numpy(w.timestamps.astype(np.float32)).to(device),
            cond=None if w.cond is None else kl(w.cond.astype(np.float32)),
        )

    def __len__(self) -> int:
        return self.values.shape[0]


@dataclass
class History:
    """Per-epoch figures of one training run."""

    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # cumulative training wall time
    best_epoch: int = -1
    best_valid: float = math.inf


ParamList = tuple[Tensor, ...] | list[Tensor]


def ema_with_warmup(decay: float) -> Callable[[ParamList, ParamList, Tensor | int], None]:
    """EMA update with the decay warmed up as min(decay, (1 + n)/(10 + n)) after n updates.

    A fixed decay of 0.999 keeps ≈ 0.999ⁿ of the first weights for n steps: still 25 % after
    1400 steps, which spoils the EMA of any short run; the warm-up tracks the model early and
    reaches `decay` after ≈ 9/(1 − decay) steps (as in common EMA implementations).
    """

    @torch.no_grad()
    def update(ema: ParamList, current: ParamList, n_averaged: Tensor | int) -> None:
        n = float(n_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(ema, current, 1.0 - d)

    return update


def _lr_lambda(epochs: int, milestones: tuple[float, ...]) -> Callable[[int], float]:
    marks = [int(m * epochs) for m in milestones]
    return lambda epoch: 0.1 ** sum(epoch >= m for m in marks)


class Trainer:
    """Owns the optimisation state of one run; `fit` trains, `state_dict` feeds resume."""

    def __init__(
        self,
        network: nn.Module,
        schedule: NoiseSchedule,
        train_cfg: TrainConfig,
        diffusion_cfg: DiffusionConfig,
        device: torch.device,
        *,
        horizon: int | None = None,
    ):
        self.network = network.to(device)
        self.horizon = horizon  # the forecast mask hides the last `horizon` steps
        self.patterns: Tensor | None = None  # (P, K, L) historical masks; None: the batch's own
        self.schedule = schedule.to(device)
        self.cfg = train_cfg
        self.device = device
        self.objective = get_objective(diffusion_cfg.objective)
        self.objective_kwargs: dict[str, Any] = (
            {"antithetic": True} if diffusion_cfg.antithetic else {}
        )
        params = list(network.parameters()) + list(schedule.parameters())
        self.optimizer = torch.optim.Adam(
            params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay
        )
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(train_cfg.epochs, train_cfg.lr_milestones)
        )
        self.ema = AveragedModel(
            network, multi_avg_fn=ema_with_warmup(train_cfg.ema_decay), use_buffers=True
        )
        self.generator = torch.Generator(device=device).manual_seed(train_cfg.seed)
        self.epoch = 0
        self.history = History()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        h = self.history
        return {
            "network": self.network.state_dict(),
            "schedule": self.schedule.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "history": {
                "epochs": h.epochs,
                "train_loss": h.train_loss,
                "valid_loss": h.valid_loss,
                "seconds": h.seconds,
                "best_epoch": h.best_epoch,
                "best_valid": h.best_valid,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.schedule.load_state_dict(state["schedule"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        self.generator.set_state(state["generator"].cpu())
        self.epoch = int(state["epoch"])
        self.history = History(**state["history"])

    # ------------------------------------------------------------------ steps
    def _loss(
        self,
        model: nn.Module,
        batch: ModelBatch,
        idx: Tensor,
        generator: torch.Generator,
        use_protocol_cond: bool,
    ) -> Tensor:
        x0 = batch.values[idx]  # (B, K, L)
        observed = batch.observed[idx]
        if use_protocol_cond and batch.cond is not None:
            cond_mask = batch.cond[idx]
        else:
            cond_mask = make_cond_mask(
                self.cfg.masking,
                observed,
                generator,
                patterns=batch.observed if self.patterns is None else self.patterns,
                horizon=self.horizon,
            )
        target = observed * (1.0 - cond_mask)
        cond = Conditioning(x=x0 * cond_mask, mask=cond_mask, timestamps=batch.timestamps[idx])
        return self.objective(
            model, x0, cond, target, self.schedule, generator=generator, **self.objective_kwargs
        )

    def train_epoch(self, data: ModelBatch, progress: bool) -> float:
        self.network.train()
        n = len(data)
        order = torch.randperm(n, generator=self.generator, device=self.device)
        batches = order.split(self.cfg.batch_size)
        total = 0.0
        bar = tqdm(
            batches,
            desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
            leave=False,
            disable=not progress,
        )
        for idx in bar:
            loss = self._loss(self.network, data, idx, self.generator, use_protocol_cond=False)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss.item()} at epoch {self.epoch + 1}"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.ema.update_parameters(self.network)
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        self.lr_schedule.step()
        self.epoch += 1
        return total / max(len(batches), 1)

    @torch.no_grad()
    def validate(self, data: ModelBatch, repeats: int = 3) -> float:
        """Objective of the EMA weights on validation windows, with a fixed seed each epoch.

        Uses the protocol's evaluation mask when the windows carry one (else random masks), and
        averages over `repeats` draws of diffusion time and noise to steady the figure.
        """
        model = self.ema.module
        model.eval()
        gen = torch.Generator(device=self.device).manual_seed(12345)
        losses = []
        for _ in range(repeats):
            for idx in torch.arange(len(data), device=self.device).split(64):
                losses.append(self._loss(model, data, idx, gen, use_protocol_cond=True).item())
        return float(np.mean(losses))

    def fit(
        self,
        train: WindowSet,
        valid: WindowSet | None,
        *,
        on_epoch: Callable[[Trainer, float, float], None] | None = None,
        progress: bool = True,
        patterns: np.ndarray | None = None,
    ) -> History:
        """Train until `epochs` (or `max_minutes`); `on_epoch(trainer, train_loss, valid_loss)`
        runs after each epoch (the caller saves checkpoints and logs there). `patterns`
        (P, L, K) bool: missingness patterns for historical/mix masks (default: the batch's)."""
        data = ModelBatch.from_windows(train, self.device)
        if patterns is not None:
            # (P, L, K) → (P, K, L), model layout
            self.patterns = torch.from_numpy(
                np.ascontiguousarray(np.asarray(patterns, bool).transpose(0, 2, 1))
            ).to(self.device)
        vdata = ModelBatch.from_windows(valid, self.device) if valid is not None else None
        start = time.perf_counter()
        elapsed0 = self.history.seconds[-1] if self.history.seconds else 0.0
        while self.epoch < self.cfg.epochs:
            train_loss = self.train_epoch(data, progress)
            valid_loss = self.validate(vdata) if vdata is not None else train_loss
            h = self.history
            h.epochs.append(self.epoch)
            h.train_loss.append(train_loss)
            h.valid_loss.append(valid_loss)
            h.seconds.append(elapsed0 + time.perf_counter() - start)
            if valid_loss < h.best_valid:
                h.best_valid, h.best_epoch = valid_loss, self.epoch
            log.info("epoch %d: train %.4f valid %.4f", self.epoch, train_loss, valid_loss)
            if on_epoch is not None:
                on_epoch(self, train_loss, valid_loss)
            if self.cfg.max_minutes is not None and h.seconds[-1] > 60 * self.cfg.max_minutes:
                log.info("stopping after %.1f min (train.max_minutes)", h.seconds[-1] / 60)
                break
        return self.history


def save_training_state(trainer: Trainer, path: Path) -> None:
    """The resume checkpoint (`last.pt`), written atomically."""
    checkpoint.save_atomic(trainer.state_dict(), path)
