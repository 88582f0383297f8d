"""VDM's learned schedule trained as VDM trains it: end points fixed, the interior descending the
variance of the diffusion-loss estimator, its mean (the bound) unchanged.

Data x ~ N(0, s²) per entry (s = 0.5, K = 2, L = 4), all entries targets, and the exact noise
predictor as a function of (z, γ) — as a network is of (z, t), it takes no gradient from the
schedule. Then E[L] = ½∫ E‖ε − ε̂‖² dγ does not depend on the interior, while the variance of
L = ½γ'(t)‖ε − ε̂‖² with t ~ U(0, 1) does (VDM §5, Appendix I.2).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import Tensor

from csdi.config import load_config
from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.losses import dsm_loss, dsm_terms
from csdi.diffusion.schedule import LearnedSchedule
from csdi.imputer import Imputer
from tests.conftest import TINY, sine_frame_values

K, L, S = 2, 4, 0.5


def exact_eps(schedule: LearnedSchedule):  # type: ignore[no-untyped-def]
    def eps(z: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        g = schedule.gamma(t).detach()[:, None, None]  # the model sees t, not the schedule
        a2, s2 = torch.sigmoid(-g), torch.sigmoid(g)
        return s2.sqrt() * z / (a2 * S**2 + s2)

    return eps


def terms(schedule: LearnedSchedule, x0: Tensor, seed: int) -> Tensor:
    """(N,) per-window diffusion terms ½γ'(t)‖ε − ε̂‖² at t ~ U(0, 1)."""
    u = torch.rand(x0.shape[0], generator=torch.Generator().manual_seed(seed))
    cond = Conditioning(x=torch.zeros_like(x0), mask=torch.zeros_like(x0))
    with torch.no_grad():
        return dsm_terms(
            exact_eps(schedule), x0, cond, torch.ones_like(x0, dtype=torch.bool), schedule, u,
            weighting="elbo", gamma_uniform=False,
            generator=torch.Generator().manual_seed(seed + 1),
        )  # fmt: skip


def test_interior_descends_the_variance_and_keeps_the_mean() -> None:
    torch.manual_seed(0)
    schedule = LearnedSchedule(hidden=16)
    x0 = S * torch.randn(4000, K, L, generator=torch.Generator().manual_seed(0))
    before = terms(schedule, x0, seed=10)
    interior = [p for n, p in schedule.named_parameters() if not n.startswith("gamma_")]
    opt = torch.optim.Adam(interior, lr=3e-2)
    cond = Conditioning(x=torch.zeros(256, K, L), mask=torch.zeros(256, K, L))
    for step in range(150):
        batch = S * torch.randn(256, K, L, generator=torch.Generator().manual_seed(100 + step))
        opt.zero_grad()
        dsm_loss(
            exact_eps(schedule), batch, cond, torch.ones_like(batch), schedule,
            weighting="elbo", gamma_uniform=False, schedule_gradient="variance",
            generator=torch.Generator().manual_seed(step),
        ).backward()  # fmt: skip
        opt.step()
    after = terms(schedule, x0, seed=10)
    n = x0.shape[0]
    # the mean is the bound's diffusion term: unchanged within 4 Monte-Carlo standard errors
    se = math.sqrt(float(before.var() + after.var()) / n)
    assert abs(float(after.mean() - before.mean())) < 4 * se, (after.mean(), before.mean(), se)
    # the variance falls: a ratio below 0.7 is ≫ 4 standard errors of a variance ratio
    # (≈ √(2/n)·√(kurtosis) ≈ 0.1 here) away from 1
    assert float(after.var() / before.var()) < 0.7, (after.var(), before.var())
    assert float(schedule.gamma_0) == pytest.approx(-13.3) and float(schedule.gamma_1) == 5.0


def test_training_a_learned_schedule_keeps_its_ends_and_saves_its_ema(tmp_path) -> None:
    cfg = load_config(
        None,
        [*TINY, "diffusion.schedule=learned", "diffusion.objective=dsm_elbo", "name=learned"],
    )
    data = sine_frame_values(24 * 12, 3, 0.3, seed=0).reshape(24, 12, 3)
    imputer = Imputer(cfg).fit(data, output_dir=tmp_path / "m", progress=False)
    schedule = imputer.schedule
    assert float(schedule.gamma_0) == pytest.approx(-13.3)
    assert float(schedule.gamma_1) == pytest.approx(5.0)
    saved = torch.load(tmp_path / "m" / "model.pt", weights_only=True)["schedule"]
    live = torch.load(tmp_path / "m" / "last.pt", weights_only=True)["schedule"]
    assert any(not torch.equal(saved[k], live[k]) for k in saved)  # the EMA, not the live one
    with pytest.raises(ValueError, match="only with the ELBO objective"):
        bad = replace(cfg, diffusion=replace(cfg.diffusion, objective="dsm_simple"))
        Imputer(bad).fit(data, progress=False)
