"""Masked training of the conditional noise predictor (CSDI, Tashiro et al. 2021, Algorithm 1).

Each step: pick a batch of windows, draw a conditioning mask inside the observed entries with the
configured strategy, and minimise the chosen objective on the remaining observed entries (the
targets). Adds what the reference lacks: EMA weights, a best-validation checkpoint, exact resume
from the last checkpoint, a wall-time limit, and per-epoch tracking.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from csdi import checkpoint
from csdi.config import DiffusionConfig, TrainConfig
from csdi.data.masking import make_cond_mask
from csdi.data.windows import WindowSet
from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.losses import get_objective
from csdi.diffusion.noise import window_seed
from csdi.diffusion.prior import PRIOR_MEANS, ResidualPrior, residual_scale, seasonal_periods
from csdi.diffusion.schedule import NoiseSchedule
from csdi.distributed import SINGLE, Distributed
from csdi.ema import ExponentialMovingAverage
from csdi.nn.precision import AtPrecision
from csdi.progress import bar_disable

log = logging.getLogger(__name__)

#: the most training windows `Trainer.fit_prior` chooses the prior's seasons on
SEASON_WINDOWS = 4096


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

    def has_targets(self) -> bool:
        """Whether a validation loss can score anything here: an observed entry outside the
        protocol's conditioning mask, or any observed entry where masks are drawn."""
        held = self.observed if self.cond is None else self.observed * (1.0 - self.cond)
        return bool(held.sum() > 0)


class NoNoise(nn.Module):
    """ε̂ = 0 everywhere: the noise predictor of a network that has learned nothing."""

    def forward(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        return torch.zeros_like(z_t)


#: a best validation loss above this share of `NoNoise`'s means training failed
STALLED: Final = 0.9
#: fewer optimizer steps than this may simply not have had time to learn (a smoke run)
FEW_STEPS: Final = 200


@dataclass
class History:
    """Per-epoch figures of one training run."""

    epochs: list[int] = field(default_factory=list)  # rounds (epochs, or validate_every steps)
    steps: list[int] = field(default_factory=list)  # optimizer steps at each round's end
    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # cumulative training wall time
    best_epoch: int = -1
    best_valid: float = math.inf


def lr_factor(cfg: TrainConfig, step: int, progress: float, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rate before optimizer step `step` (0-based).

    "milestones" (CSDI): ×0.1 at each fraction in `lr_milestones` of the epochs (counted in whole
    epochs, as CSDI's MultiStepLR) or, when `steps` is set, of the steps. "cosine": linear
    warm-up over `warmup_steps`, times ½(1 + cos π·progress) between 1 and `lr_min_factor`,
    where `progress` ∈ [0, 1] is the share of the budget used (Loshchilov & Hutter 2017, SGDR).
    """
    if cfg.lr_schedule == "milestones":
        if cfg.steps is None:
            now, total = step // max(steps_per_epoch, 1), cfg.epochs
        else:
            now, total = step, cfg.steps
        return 0.1 ** sum(now >= int(m * total) for m in cfg.lr_milestones)
    if cfg.lr_schedule == "cosine":
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
        p = min(max(progress, 0.0), 1.0)
        low = cfg.lr_min_factor
        return warm * (low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * p)))
    raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; choose milestones or cosine")


class Trainer:
    """Owns the optimisation state of one run; `fit` trains, `state_dict` feeds resume.

    Training runs in rounds: a round is one epoch (a pass over the windows in a fresh random
    order) or, with `validate_every`, that many steps; each round ends with a validation and the
    `on_epoch` callback. `epoch` counts the rounds done, `step` the optimizer steps.
    """

    def __init__(
        self,
        network: nn.Module,
        schedule: NoiseSchedule,
        train_cfg: TrainConfig,
        diffusion_cfg: DiffusionConfig,
        device: torch.device,
        *,
        horizon: int | None = None,
        distributed: Distributed = SINGLE,
    ):
        self.network = network.to(device)
        self.distributed = distributed
        # the module that takes the training forward/backward: DDP averages its gradients
        self.model: nn.Module = self.network
        if distributed.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model = DistributedDataParallel(self.network, device_ids=ids)
        if train_cfg.compile:  # graphs built at the first steps; the EMA copy stays eager
            self.model = cast(nn.Module, torch.compile(self.model))
        self.horizon = horizon  # the forecast mask hides the last `horizon` steps
        self.patterns: Tensor | None = None  # (P, K, L) historical masks; None: the batch's own
        self.schedule = schedule.to(device)
        self.cfg = train_cfg
        self.device = device
        self.objective = get_objective(diffusion_cfg.objective)
        if diffusion_cfg.prior_mean not in PRIOR_MEANS:
            raise ValueError(
                f"unknown diffusion.prior_mean {diffusion_cfg.prior_mean!r}; "
                f"choose one of {list(PRIOR_MEANS)}"
            )
        if diffusion_cfg.prior_season != "none" and diffusion_cfg.prior_mean != "interpolation":
            raise ValueError("diffusion.prior_season needs diffusion.prior_mean = 'interpolation'")
        # the residual prior (csdi.diffusion.prior): fitted on the training windows in `fit`
        self.prior_mean = diffusion_cfg.prior_mean
        self.prior_season = diffusion_cfg.prior_season
        self.prior: ResidualPrior | None = None
        self.objective_kwargs: dict[str, Any] = (
            {"antithetic": True} if diffusion_cfg.antithetic else {}
        )
        self.schedule_ema: ExponentialMovingAverage | None = None
        if any(True for _ in schedule.parameters()):
            self._learn_schedule_as_vdm(self.schedule, diffusion_cfg.objective)
            self.schedule_ema = ExponentialMovingAverage(self.schedule, train_cfg.ema_decay)
        # a learned schedule's trainable parameters (its interior): outside the DDP module
        self.schedule_params = [p for p in schedule.parameters() if p.requires_grad]
        if train_cfg.grad_clip is not None and not train_cfg.grad_clip > 0:
            raise ValueError(f"train.grad_clip must be positive or none, got {train_cfg.grad_clip}")
        self._parameters = [*network.parameters(), *self.schedule_params]
        self.optimizer = torch.optim.Adam(
            self._parameters,
            lr=train_cfg.lr,
            betas=(0.9, train_cfg.adam_beta2),
            weight_decay=train_cfg.weight_decay,
            # one kernel for all parameters: on a CPU the per-tensor loop takes 8-12 ms of a
            # 140 ms own-data step (149 tensors), the fused kernel 1-2 ms (whole trainings:
            # level within this machine's noise, ablations.md)
            fused=True if device.type in ("cuda", "cpu") else None,
        )
        self.ema = ExponentialMovingAverage(network, train_cfg.ema_decay)
        # one shuffle for all ranks; masks and noise from a stream of this rank's own
        self.generator = torch.Generator(device=device).manual_seed(train_cfg.seed)
        self.noise_generator = self.generator
        if distributed.enabled:
            self.noise_generator = torch.Generator(device=device).manual_seed(
                window_seed(train_cfg.seed, 1 + distributed.rank)
            )
        self.epoch = 0
        self.step = 0
        self.seconds = 0.0  # training wall time so far, across resumes
        self.marks_done = 0  # how many of `snapshot_minutes` have been passed
        self._order: Tensor | None = None  # the current pass's window order
        self._cursor = 0
        self.history = History()

    def _learn_schedule_as_vdm(self, schedule: NoiseSchedule, objective: str) -> None:
        """A learned schedule trains as VDM's (Kingma et al. 2021, §5, Appendix I.2): with the
        ELBO objective only; t ~ U(0, 1) weighted ½γ'(t), so the interior sets the density of
        γ; the interior descends the variance of the per-window diffusion loss (its mean does
        not depend on it); the end points γ₀, γ₁ stay where they are (the samplers start from
        N(0, I) at γ₁); the schedule has its own EMA, saved with the EMA network."""
        if objective != "dsm_elbo":
            raise ValueError(
                f"a learned noise schedule trains only with the ELBO objective 'dsm_elbo', "
                f"not {objective!r} (its loss would not be a bound to learn the schedule on)"
            )
        for name in ("gamma_0", "gamma_1"):
            end = getattr(schedule, name, None)
            if isinstance(end, nn.Parameter):
                end.requires_grad_(False)
        self.objective_kwargs.update(gamma_uniform=False, schedule_gradient="variance")

    @property
    def averaged_schedule(self) -> NoiseSchedule:
        """The schedule to save with the EMA network: its own EMA when it learns, else itself."""
        if self.schedule_ema is None:
            return self.schedule
        return self.schedule_ema.module  # type: ignore[return-value]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        h = self.history
        return {
            "network": self.network.state_dict(),
            "schedule": self.schedule.state_dict(),
            "ema": self.ema.state_dict(),
            "schedule_ema": None if self.schedule_ema is None else self.schedule_ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "generator_device": self.generator.device.type,
            # dropout draws from torch's global generator: resume must continue its stream too
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device)
            if self.device.type == "cuda"
            else None,
            "epoch": self.epoch,
            "step": self.step,
            "seconds": self.seconds,
            "marks_done": self.marks_done,
            "order": self._order,
            "cursor": self._cursor,
            "history": dataclasses.asdict(h),
            "prior_scale": None if self.prior is None else self.prior.scale,
            "prior_period": None if self.prior is None else self.prior.period,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.schedule.load_state_dict(state["schedule"])
        self.ema.load_state_dict(state["ema"])
        if self.schedule_ema is not None and state.get("schedule_ema") is not None:
            self.schedule_ema.load_state_dict(state["schedule_ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        saved_on = state.get("generator_device", "cpu")
        if saved_on == self.generator.device.type:
            self.generator.set_state(state["generator"].cpu())
        else:  # a CPU stream cannot continue on a GPU (or back): reseed, deterministically
            self.generator.manual_seed(self.cfg.seed + 1_000_003 * int(state["step"]))
            log.warning(
                "resuming a %s-trained run on %s: the random stream is reseeded, so the "
                "continuation is not the same as an uninterrupted run",
                saved_on,
                self.generator.device.type,
            )
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.distributed.enabled:  # the per-rank streams are not saved: reseed them
            self.noise_generator.manual_seed(
                window_seed(self.cfg.seed + int(state["step"]), 1 + self.distributed.rank)
            )
        cuda_rng = state.get("cuda_rng")
        if cuda_rng is not None and self.device.type == "cuda" and saved_on == "cuda":
            torch.cuda.set_rng_state(cuda_rng.cpu(), self.device)
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.seconds = float(state["seconds"])
        self.marks_done = int(state["marks_done"])
        order = state["order"]
        self._order = None if order is None else order.to(self.device)
        self._cursor = int(state["cursor"])
        self.history = History(**state["history"])
        scale = state.get("prior_scale")  # the prior the weights were trained under
        if scale is not None:
            period = state.get("prior_period")
            self.prior = ResidualPrior(scale, period).to(self.device)

    # ------------------------------------------------------------------ budget
    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of the whole run: `steps`, else epochs × steps per epoch."""
        return self.cfg.steps if self.cfg.steps is not None else self.cfg.epochs * steps_per_epoch

    def progress(self, steps_per_epoch: int) -> float:
        """Share of the budget used: the larger of the steps' and the wall time's."""
        p = self.step / max(self.total_steps(steps_per_epoch), 1)
        if self.cfg.max_minutes is not None:
            p = max(p, self.seconds / (60.0 * self.cfg.max_minutes))
        return p

    def out_of_time(self) -> bool:
        return self.cfg.max_minutes is not None and self.seconds >= 60.0 * self.cfg.max_minutes

    # ------------------------------------------------------------------ steps
    def _loss(
        self,
        model: nn.Module,
        batch: ModelBatch,
        idx: Tensor,
        generator: torch.Generator,
        use_protocol_cond: bool,
    ) -> tuple[Tensor, Tensor]:
        """The objective on windows `idx` and their number of target entries (the objective's
        normaliser)."""
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
        if self.prior is not None:  # the diffusion runs on the residual u (0 where unobserved)
            cond = self.prior.attach(cond)
            x0 = torch.where(observed > 0, self.prior.encode(x0, cond), 0.0)
        if self.cfg.precision != "fp32":
            model = AtPrecision(model, self.cfg.precision, self.device)
        loss = self.objective(
            model, x0, cond, target, self.schedule, generator=generator, **self.objective_kwargs
        )
        return loss, (target != 0).sum().clamp_min(1).to(loss.dtype)

    def fit_prior(self, data: ModelBatch) -> ResidualPrior:
        """The residual prior's scale (and with `diffusion.prior_season = "auto"` its seasons)
        from the training windows, their targets drawn as training draws them (`cfg.masking`)
        from a stream of its own (the training stream, and so the run, is the same as without
        it; every rank computes the same prior). Seasons are chosen on at most
        `SEASON_WINDOWS` windows spread evenly over the data."""
        generator = torch.Generator(device=self.device).manual_seed(
            window_seed(self.cfg.seed, 0x5CA1E)
        )
        cond_mask = make_cond_mask(
            self.cfg.masking,
            data.observed,
            generator,
            patterns=data.observed if self.patterns is None else self.patterns,
            horizon=self.horizon,
        )
        period = None
        if self.prior_season == "auto":
            pick = torch.linspace(0, len(data) - 1, min(len(data), SEASON_WINDOWS)).long()
            pick = pick.to(self.device)
            period = seasonal_periods(data.values[pick], data.observed[pick], cond_mask[pick])
        scale = residual_scale(data.values, data.observed, cond_mask, period=period)
        return ResidualPrior(scale, period)

    @property
    def global_batch(self) -> int:
        """Windows per optimizer step over all ranks (batch_size per rank)."""
        return self.cfg.batch_size * self.distributed.world_size

    def _next_batch(self, n: int) -> Tensor:
        """This rank's indices of the next global batch; a new random order (the same on every
        rank) starts when the pass is used up. A short last batch is topped up from the order's
        start, so every rank gets windows and the step counts stay equal."""
        if self._order is None or self._cursor >= len(self._order):
            self._order = torch.randperm(n, generator=self.generator, device=self.device)
            self._cursor = 0
        idx = self._order[self._cursor : self._cursor + self.global_batch]
        self._cursor += len(idx)
        world = self.distributed.world_size
        if len(idx) < world:
            idx = torch.cat([idx, self._order[: world - len(idx)]])
        return idx[self.distributed.rank :: world]

    def train_round(
        self,
        data: ModelBatch,
        progress: bool,
        on_mark: Callable[[Trainer, float], None] | None = None,
    ) -> float:
        """One round of steps (an epoch, or `validate_every` steps), cut short by the budget;
        the mean training loss."""
        self.network.train()
        n = len(data)
        per_epoch = math.ceil(n / self.global_batch)
        left_in_pass = (
            per_epoch
            if self._order is None or self._cursor >= n
            else math.ceil((n - self._cursor) / self.global_batch)
        )
        length = self.cfg.validate_every or left_in_pass
        length = min(length, self.total_steps(per_epoch) - self.step)
        # the losses stay on the device: no host sync per step (one per round, below)
        total = torch.zeros((), device=self.device)
        finite = torch.ones((), dtype=torch.bool, device=self.device)
        done = 0
        marks = self.cfg.snapshot_minutes
        bars = bar_disable(progress)
        bar = tqdm(range(length), desc=f"round {self.epoch + 1}", leave=False, disable=bars)
        for _ in bar:
            start = time.perf_counter()
            factor = lr_factor(self.cfg, self.step, self.progress(per_epoch), per_epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.lr * factor
            loss, n_targets = self._loss(
                self.model, data, self._next_batch(n), self.noise_generator, use_protocol_cond=False
            )
            finite &= torch.isfinite(loss)
            self.optimizer.zero_grad(set_to_none=True)
            if self.distributed.enabled:
                # each rank's loss is normalised by its own targets; re-weight it so that the
                # gradient DDP averages is the one of the whole global batch's normalised loss
                share = self.distributed.world_size * n_targets / self.distributed.total(n_targets)
                (loss * share).backward()
            else:
                loss.backward()
            self.distributed.average_gradients(self.schedule_params)
            if self.cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(self._parameters, self.cfg.grad_clip, foreach=True)
            self.optimizer.step()
            self.ema.update_parameters(self.network)
            if self.schedule_ema is not None:
                self.schedule_ema.update_parameters(self.schedule)
            self.step += 1
            done += 1
            total += loss.detach()
            self.seconds += time.perf_counter() - start
            self.seconds = self.distributed.from_main(self.seconds, self.device)
            if not bar.disable and done % 25 == 0:  # a terminal only: a sync every 25 steps
                bar.set_postfix(loss=f"{float(total) / done:.4f}")
            while self.marks_done < len(marks) and self.seconds >= 60.0 * marks[self.marks_done]:
                if on_mark is not None:
                    on_mark(self, marks[self.marks_done])
                self.marks_done += 1
            if self.out_of_time():
                break
        finite = self.distributed.mean(finite.float()) == 1.0
        if not bool(finite):
            raise FloatingPointError(
                f"training loss became non-finite in round {self.epoch + 1} "
                f"(steps {self.step - done + 1}–{self.step}); the last checkpoint is kept"
            )
        self.epoch += 1
        return float(self.distributed.mean(total)) / max(done, 1)

    @torch.no_grad()
    def validate(self, data: ModelBatch, repeats: int = 3, model: nn.Module | None = None) -> float:
        """Objective of the EMA weights (or `model`) on validation windows, with a fixed seed
        each epoch.

        Uses the protocol's evaluation mask when the windows carry one (else random masks), and
        averages over `repeats` draws of diffusion time and noise to steady the figure.
        """
        model = self.ema.module if model is None else model
        model.eval()
        gen = torch.Generator(device=self.device).manual_seed(12345)
        losses = []
        for _ in range(repeats):
            for idx in torch.arange(len(data), device=self.device).split(64):
                losses.append(self._loss(model, data, idx, gen, use_protocol_cond=True)[0].item())
        return float(np.mean(losses))

    def fit(
        self,
        train: WindowSet,
        valid: WindowSet | None,
        *,
        on_epoch: Callable[[Trainer, float, float], None] | None = None,
        on_mark: Callable[[Trainer, float], None] | None = None,
        progress: bool = True,
        patterns: np.ndarray | None = None,
    ) -> History:
        """Train until the step budget (`steps`, else `epochs`) or `max_minutes` is used up.

        `on_epoch(trainer, train_loss, valid_loss)` runs after each round (the caller saves
        checkpoints and logs there); `on_mark(trainer, minutes)` when training passes each of
        `snapshot_minutes`. `patterns` (P, L, K) bool: missingness patterns for historical/mix
        masks (default: the batch's)."""
        data = ModelBatch.from_windows(train, self.device)
        if patterns is not None:
            # (P, L, K) → (P, K, L), model layout
            self.patterns = torch.from_numpy(
                np.ascontiguousarray(np.asarray(patterns, bool).transpose(0, 2, 1))
            ).to(self.device)
        vdata = ModelBatch.from_windows(valid, self.device) if valid is not None else None
        if vdata is not None and not vdata.has_targets():
            log.warning(
                "the validation windows hold no observed value to score: the best weights "
                "are chosen by the training loss instead"
            )
            vdata = None
        if self.prior_mean == "interpolation" and self.prior is None:
            self.prior = self.fit_prior(data)
            log.info("residual prior: scale per feature %s", self.prior.scale.tolist())
            if self.prior.period is not None:
                log.info("residual prior: season per feature %s", self.prior.period.tolist())
        per_epoch = math.ceil(len(data) / self.global_batch)
        while self.step < self.total_steps(per_epoch) and not self.out_of_time():
            train_loss = self.train_round(data, progress and self.distributed.is_main, on_mark)
            start = time.perf_counter()
            valid_loss = self.validate(vdata) if vdata is not None else train_loss
            self.seconds += time.perf_counter() - start
            self.seconds = self.distributed.from_main(self.seconds, self.device)
            h = self.history
            h.epochs.append(self.epoch)
            h.steps.append(self.step)
            h.train_loss.append(train_loss)
            h.valid_loss.append(valid_loss)
            h.seconds.append(self.seconds)
            if valid_loss < h.best_valid:
                h.best_valid, h.best_epoch = valid_loss, self.epoch
            log.info(
                "round %d (step %d, %.0f s): train %.4f valid %.4f",
                self.epoch,
                self.step,
                self.seconds,
                train_loss,
                valid_loss,
            )
            if on_epoch is not None:
                on_epoch(self, train_loss, valid_loss)
        if self.out_of_time():
            log.info("stopped after %.1f min (train.max_minutes)", self.seconds / 60)
        if self.history.epochs:  # scored on the windows that chose the best weights
            self.warn_if_stalled(vdata if vdata is not None else data)
        return self.history

    def warn_if_stalled(self, data: ModelBatch) -> None:
        """Warn when the best validation loss is above `STALLED` × that of predicting no noise
        at all on `data`: what a network whose ReLUs died (a learning rate too high) or that
        learned nothing gives."""
        floor = self.validate(data, model=NoNoise())
        if self.history.best_valid >= STALLED * floor:
            clip = " or --set train.grad_clip=1" if self.cfg.grad_clip is None else ""
            steps = self.history.steps[-1] if self.history.steps else 0
            short = f"{steps} steps are too few, or " if steps < FEW_STEPS else ""
            log.warning(
                "the network barely learned: best validation loss %.4f against %.4f for "
                "predicting no noise at all; %sa learning rate too high does this (try --set "
                "train.lr=%g%s)",
                self.history.best_valid,
                floor,
                short,
                self.cfg.lr / 3,
                clip,
            )


def save_training_state(trainer: Trainer, path: Path) -> None:
    """The resume checkpoint (`last.pt`), written atomically."""
    checkpoint.save_atomic(trainer.state_dict(), path)
