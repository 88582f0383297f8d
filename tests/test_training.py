"""Trainer pieces: the EMA warm-up and the learning-rate milestones."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from csdi import checkpoint
from csdi.config import TrainConfig
from csdi.diffusion.conditioning import Conditioning
from csdi.ema import ExponentialMovingAverage
from csdi.imputer import Imputer
from csdi.training import Trainer, lr_factor
from tests.conftest import sine_frame_values


def test_ema_warmup_forgets_the_initial_weights() -> None:
    """Weights jump from 0 to 1 after the first update; the EMA's remnant of 0 after N more
    updates is Π_{n=1..N} d_n with d_n = min(decay, (1 + n)/(10 + n)) — computed directly."""
    net = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(net.weight)
    ema = ExponentialMovingAverage(net, 0.999)
    ema.update_parameters(net)  # n = 0: copies the zeros
    with torch.no_grad():
        net.weight.fill_(1.0)
    n_updates = 300
    for _ in range(n_updates):
        ema.update_parameters(net)
    remnant = math.prod(min(0.999, (1 + n) / (10 + n)) for n in range(1, n_updates + 1))
    assert abs((1.0 - ema.module.weight.item()) - remnant) < 1e-6
    assert remnant < 0.01 < 0.999**n_updates  # a fixed decay would keep 74 % of the zeros


def test_ema_state_is_averaged_models_and_continues_after_a_load() -> None:
    """The state dict has torch's AveragedModel layout (either reads the other's), and a
    loaded average continues with the decay of its update count, as the uninterrupted one."""
    net = nn.Linear(3, 2)
    gen = torch.Generator().manual_seed(0)
    ours = ExponentialMovingAverage(net, 0.9)
    torchs = AveragedModel(net, use_buffers=True)
    assert ours.state_dict().keys() == torchs.state_dict().keys()
    for _ in range(5):
        with torch.no_grad():
            net.weight.add_(torch.randn(2, 3, generator=gen))
        ours.update_parameters(net)
    again = ExponentialMovingAverage(nn.Linear(3, 2), 0.9)
    again.load_state_dict(ours.state_dict())
    assert int(again.n_averaged) == 5
    with torch.no_grad():
        net.weight.add_(1.0)
    ours.update_parameters(net)
    again.update_parameters(net)
    torch.testing.assert_close(again.module.weight, ours.module.weight, rtol=0, atol=0)
    torchs.load_state_dict(ours.state_dict())
    assert int(torchs.n_averaged) == 6


def test_lr_drops_tenfold_at_each_milestone() -> None:
    """CSDI's MultiStepLR: by whole epochs (10 steps each here), or by steps when `steps` is set."""
    cfg = TrainConfig(epochs=200, lr_milestones=(0.75, 0.9))
    f = [lr_factor(cfg, 10 * e + 9, 0.0, 10) for e in (0, 149, 150, 179, 180, 199)]
    assert f == [1, 1, 0.1, 0.1, 0.1**2, 0.1**2]
    assert lr_factor(cfg, 1499, 0.0, 10) == 1 and lr_factor(cfg, 1500, 0.0, 10) == 0.1
    by_steps = TrainConfig(steps=100, lr_milestones=(0.5,))
    assert [lr_factor(by_steps, s, 0.0, 7) for s in (49, 50)] == [1, 0.1]


def test_cosine_lr_warms_up_then_anneals_over_the_budget() -> None:
    """Linear warm-up (step + 1)/W, then ½(1 + cos πp) between 1 and the floor: 1 at p = 0,
    the midpoint at p = ½, the floor at p = 1 and beyond (a run past its time budget)."""
    cfg = TrainConfig(lr_schedule="cosine", warmup_steps=10, lr_min_factor=0.01)
    assert lr_factor(cfg, 0, 0.0, 1) == 0.1
    assert lr_factor(cfg, 4, 0.0, 1) == 0.5
    assert lr_factor(cfg, 20, 0.0, 1) == 1.0
    assert math.isclose(lr_factor(cfg, 20, 0.5, 1), 0.01 + 0.99 * 0.5)
    assert math.isclose(lr_factor(cfg, 20, 1.0, 1), 0.01)
    assert math.isclose(lr_factor(cfg, 20, 3.0, 1), 0.01)


def _tiny_fit(tiny_config, tmp_path, **train):  # type: ignore[no-untyped-def]
    cfg = replace(tiny_config, train=replace(tiny_config.train, **train))
    data = sine_frame_values(24 * 12, 3, 0.3, seed=0).reshape(24, 12, 3)
    return Imputer(cfg), data


def test_a_non_finite_loss_stops_the_round_and_keeps_the_last_checkpoint(
    tiny_config, tmp_path, monkeypatch
) -> None:
    imputer, data = _tiny_fit(tiny_config, tmp_path, epochs=1)
    out = tmp_path / "m"
    imputer.fit(data, output_dir=out, progress=False)
    before = (out / "last.pt").read_bytes()
    real = Trainer._loss

    def poisoned(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        loss, n = real(self, *args, **kwargs)
        return (loss * float("nan"), n) if self.step == 4 else (loss, n)

    monkeypatch.setattr(Trainer, "_loss", poisoned)
    again, _ = _tiny_fit(tiny_config, tmp_path, epochs=2)
    with pytest.raises(FloatingPointError, match=r"non-finite in round 2 \(steps 4–6\)"):
        again.fit(data, output_dir=out, resume=True, progress=False)
    assert (out / "last.pt").read_bytes() == before


def test_resume_across_devices_reseeds_and_says_so(tiny_config, tmp_path, caplog) -> None:
    """A CPU generator state cannot seed a CUDA generator (nor the reverse): simulated here by
    a checkpoint that says it was written on a GPU."""
    imputer, data = _tiny_fit(tiny_config, tmp_path, epochs=1)
    out = tmp_path / "m"
    imputer.fit(data, output_dir=out, progress=False)
    state = checkpoint.load(out / "last.pt")
    state["generator_device"] = "cuda"
    state["generator"] = torch.zeros(16, dtype=torch.uint8)  # a Philox state: not a CPU one
    checkpoint.save_atomic(state, out / "last.pt")
    again, _ = _tiny_fit(tiny_config, tmp_path, epochs=2)
    with caplog.at_level(logging.WARNING, logger="csdi.training"):
        again.fit(data, output_dir=out, resume=True, progress=False)
    assert "reseeded" in caplog.text
    assert again.history is not None and len(again.history.epochs) == 2


def test_validation_without_observed_values_falls_back_to_the_training_loss(
    tiny_config, tmp_path, caplog
) -> None:
    """A file whose last rows (the validation windows) are all blank would score a validation
    loss of 0 every round, so the first round would stay "best" and its weights be kept: the
    trainer says so and chooses by the training loss instead."""
    values = sine_frame_values(120, 3, 0.2, seed=1)
    values[-30:] = np.nan  # the validation tail (25 % of the rows) holds nothing
    cfg = replace(tiny_config, data=replace(tiny_config.data, window=12, validation_fraction=0.25))
    with caplog.at_level(logging.WARNING, logger="csdi.training"):
        imputer = Imputer(cfg).fit(pd.DataFrame(values), progress=False)
    assert "no observed value to score" in caplog.text
    h = imputer.history
    assert h is not None and len(h.epochs) == 2
    assert h.valid_loss == h.train_loss and min(h.valid_loss) > 0
    assert h.best_valid == min(h.train_loss)


def test_residual_prior_in_training_and_resume(tiny_config, tmp_path, monkeypatch) -> None:
    """Under the residual prior the objective receives u = (x − μ)/s on the observed entries
    and 0 on the unobserved ones (as without the prior: no huge −μ/s inputs); a resumed run
    keeps the scale its weights were trained under (from last.pt), even if the data changed."""
    cfg = replace(tiny_config, diffusion=replace(tiny_config.diffusion, prior_mean="interpolation"))
    seen: list[tuple[torch.Tensor, Conditioning]] = []
    real = Trainer._loss

    def spy(self, model, batch, idx, generator, use_protocol_cond):  # type: ignore[no-untyped-def]
        def objective(m, x0, cond, target, schedule, **kwargs):  # type: ignore[no-untyped-def]
            seen.append((x0.detach(), cond))
            return inner(m, x0, cond, target, schedule, **kwargs)

        inner, self.objective = self.objective, objective
        try:
            out = real(self, model, batch, idx, generator, use_protocol_cond)
        finally:
            self.objective = inner
        seen[-1] = (*seen[-1], batch.values[idx], batch.observed[idx])  # type: ignore[assignment]
        return out

    monkeypatch.setattr(Trainer, "_loss", spy)
    data = sine_frame_values(24 * 12, 3, 0.3, seed=4).reshape(24, 12, 3)
    out = tmp_path / "m"
    imputer = Imputer(cfg).fit(data, output_dir=out, progress=False)
    assert imputer.prior is not None
    u, cond, x, observed = seen[0]  # type: ignore[misc]
    expected = torch.where(observed > 0, imputer.prior.encode(x, cond), 0.0)
    torch.testing.assert_close(u, expected)
    assert float(u[observed == 0].abs().max()) == 0.0
    monkeypatch.setattr(Trainer, "_loss", real)

    other = 3.0 * sine_frame_values(24 * 12, 3, 0.1, seed=5).reshape(24, 12, 3)
    longer = replace(cfg, train=replace(cfg.train, epochs=3))
    resumed = Imputer(longer).fit(other, output_dir=out, resume=True, progress=False)
    assert resumed.prior is not None
    torch.testing.assert_close(resumed.prior.scale, imputer.prior.scale, rtol=0, atol=0)
    assert resumed.history is not None and len(resumed.history.epochs) == 3


def test_a_network_that_learned_nothing_is_reported(tiny_config, tmp_path, caplog) -> None:
    """With lr 0 the zero-initialised output layer keeps ε̂ = 0, so the best loss (here the
    training loss: windows given as an array have no validation split) is that of predicting no
    noise, whose ε-MSE is E[ε²] = 1 up to the draws of ε: the trainer says the network barely
    learned. A run that learned says nothing."""
    imputer, data = _tiny_fit(tiny_config, tmp_path, lr=0.0)
    with caplog.at_level(logging.WARNING, logger="csdi.training"):
        imputer.fit(data, output_dir=tmp_path / "dead", progress=False)
    found = re.search(
        r"barely learned: best validation loss ([\d.]+) against ([\d.]+)", caplog.text
    )
    assert found is not None
    best, floor = float(found[1]), float(found[2])
    assert imputer.history is not None and best == round(imputer.history.best_valid, 4)
    assert abs(best - 1.0) < 0.1 and abs(floor - 1.0) < 0.1
    assert "try --set train.lr=0 or --set train.grad_clip=1)" in caplog.text  # lr / 3, unclipped
    steps = imputer.history.steps[-1]
    assert steps < 200 and f"{steps} steps are too few, or a learning rate" in caplog.text
    caplog.clear()
    imputer, _ = _tiny_fit(tiny_config, tmp_path, lr=1e-2, epochs=20)
    with caplog.at_level(logging.WARNING, logger="csdi.training"):
        imputer.fit(data, output_dir=tmp_path / "alive", progress=False)
    assert imputer.history is not None and imputer.history.best_valid < 0.9
    assert "barely learned" not in caplog.text


def _watch_adam_steps(monkeypatch, read):  # type: ignore[no-untyped-def]
    """A list that receives `read(optimizer)` just before every Adam step."""
    seen: list = []
    real_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(read(self))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    return seen


def test_grad_clip_bounds_the_gradient_each_step_sees(tiny_config, tmp_path, monkeypatch) -> None:
    """Every optimizer step sees a global gradient norm of at most `grad_clip` (and the
    unclipped gradients of this data exceed it, so the bound is what clipping made)."""

    def grad_norm(optimizer: torch.optim.Optimizer) -> float:
        grads = [
            p.grad
            for group in optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

    seen = _watch_adam_steps(monkeypatch, grad_norm)
    imputer, data = _tiny_fit(tiny_config, tmp_path)
    imputer.fit(data, output_dir=tmp_path / "free", progress=False)
    free = max(seen)
    seen.clear()
    imputer, _ = _tiny_fit(tiny_config, tmp_path, grad_clip=free / 4)
    imputer.fit(data, output_dir=tmp_path / "clipped", progress=False)
    assert seen and max(seen) <= free / 4 * (1 + 1e-5)
    with pytest.raises(ValueError, match="grad_clip must be positive"):
        _tiny_fit(tiny_config, tmp_path, grad_clip=0.0)[0].fit(data, progress=False)


def test_adam_beta2_reaches_the_optimizer(tiny_config, tmp_path, monkeypatch) -> None:
    betas = _watch_adam_steps(monkeypatch, lambda optimizer: optimizer.param_groups[0]["betas"])
    imputer, data = _tiny_fit(tiny_config, tmp_path, epochs=1, adam_beta2=0.99)
    imputer.fit(data, output_dir=tmp_path / "m", progress=False)
    assert betas and set(betas) == {(0.9, 0.99)}


def test_adam_step_is_adams_update_on_a_cpu(tiny_config, tmp_path, monkeypatch) -> None:
    """The trainer's optimizer (the fused kernel on a CPU) moves a parameter by Adam's first
    step with L2 weight decay (Kingma & Ba 2015, Algorithm 1): g = ∇ + λp, m̂ = g, v̂ = g², so
    p ← p − lr·g/(|g| + ε)."""
    optimizers = _watch_adam_steps(monkeypatch, lambda optimizer: optimizer)
    imputer, data = _tiny_fit(tiny_config, tmp_path, epochs=1)
    imputer.fit(data, output_dir=tmp_path / "m", progress=False)
    used = optimizers[0].defaults
    assert used["fused"] is True
    p = torch.nn.Parameter(torch.tensor([0.5, -2.0, 3.0]))
    grad = torch.tensor([0.1, 0.0, -4.0])
    lr, decay, eps = 0.01, 0.1, used["eps"]
    optimizer = torch.optim.Adam(
        [p], lr=lr, weight_decay=decay, betas=used["betas"], eps=eps, fused=True
    )
    before = p.detach().clone()
    p.grad = grad.clone()
    optimizer.step()
    g = grad + decay * before
    torch.testing.assert_close(p.detach(), before - lr * g / (g.abs() + eps), rtol=1e-6, atol=1e-7)
