"""The residual prior: its frame, its scale, and sampling, clipping and the bound through it."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from csdi.config import SamplingConfig
from csdi.data.scaling import ValueBounds
from csdi.diffusion.bounds import ClippedPredictor
from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.parameterization import eps_to_x0
from csdi.diffusion.prior import ResidualPrior, residual_scale, seasonal_periods
from csdi.diffusion.schedule import NoiseSchedule, get_schedule
from csdi.inference import elbo_windows, sample_windows


def test_frame_is_the_interpolation_plus_scaled_residual() -> None:
    x = torch.tensor([[[1.0, 9.0, 3.0, 9.0, 9.0], [0.0, 4.0, 0.0, 2.0, 0.0]]])  # (1, K=2, L=5)
    mask = torch.tensor([[[1.0, 0, 1, 0, 0], [0, 1, 0, 1, 0]]])
    cond = Conditioning(x=x * mask, mask=mask)
    prior = ResidualPrior(torch.tensor([2.0, 0.5]))
    # interior: linear; beyond the last given value: constant
    mean = [[1.0, 2.0, 3.0, 3.0, 3.0], [4.0, 4.0, 3.0, 2.0, 2.0]]
    assert prior.mean(cond).tolist() == [mean]
    u = prior.encode(x, cond)
    expected = (x - torch.tensor([mean])) / torch.tensor([2.0, 0.5])[:, None]
    torch.testing.assert_close(u, expected)
    torch.testing.assert_close(prior.decode(u, cond), x)
    torch.testing.assert_close(prior.decode(u[:, None].repeat(1, 3, 1, 1), cond)[:, 2], x)
    target = torch.tensor([[[0.0, 1, 0, 1, 0], [0, 0, 1, 0, 0]]])
    per_value = (2 * math.log(2.0) + math.log(0.5)) / 3
    torch.testing.assert_close(prior.log_scale_per_value(target, cond), torch.tensor([per_value]))
    # a window that gives feature 1 nothing: there, μ = 0 and the scale is 1 (CSDI's prior)
    bare = Conditioning(
        x=cond.x * torch.tensor([[1.0], [0.0]]), mask=mask * torch.tensor([[1.0], [0.0]])
    )
    torch.testing.assert_close(prior.scales(bare), torch.tensor([[[2.0], [1.0]]]))
    torch.testing.assert_close(prior.encode(x, bare)[0, 1], x[0, 1])
    torch.testing.assert_close(prior.decode(prior.encode(x, bare), bare), x)
    for bad in ([1.0, 0.0], [1.0, math.inf], []):
        with pytest.raises(ValueError, match="residual scale"):
            ResidualPrior(torch.tensor(bad))


def test_residual_scale_is_the_rms_of_the_interpolation_error() -> None:
    """Feature 0: targets off the line by 3 and 4 → √((9 + 16)/2) (a third window that gives
    it nothing does not count: the prior has scale 1 there); feature 1: on the line → the
    floor; feature 2: no target → 1."""
    values = torch.zeros(3, 3, 3)
    values[0, 0, 1], values[1, 0, 1], values[2, 0] = 3.0, -4.0, 100.0
    values[:, 1] = torch.tensor([0.0, 1.0, 2.0])
    observed = torch.ones(3, 3, 3)
    cond = torch.tensor([[1.0, 0, 1], [1, 0, 1], [1, 1, 1]]).repeat(3, 1, 1)
    cond[2, 0] = 0.0
    scale = residual_scale(values, observed, cond, floor=0.05)
    torch.testing.assert_close(scale, torch.tensor([math.sqrt(12.5), 0.05, 1.0]))


def test_seasons_are_chosen_by_the_residual_they_leave() -> None:
    """Forecast windows (the last 8 of 40 steps hidden) of three features: a noisy season of
    6 steps → a multiple of 6 (each repeats the same values; which one is left to the noise),
    a random walk → 1 (its last value is the best guess), white noise → whatever leaves the
    least residual, never more than holding the last value; the scale is then the RMS of the
    seasonal residual."""
    gen = torch.Generator().manual_seed(0)
    n, length = 200, 40
    start = torch.randint(0, 6, (n, 1), generator=gen)
    steps = torch.arange(length)[None] + start
    season = torch.sin(2 * math.pi * steps / 6) * 2 + 0.05 * torch.randn(n, length, generator=gen)
    walk = torch.randn(n, length, generator=gen).cumsum(-1)
    noise = torch.randn(n, length, generator=gen)
    values = torch.stack([season, walk, noise], dim=1)  # (N, 3, L)
    observed = torch.ones_like(values)
    cond = torch.ones_like(values)
    cond[..., -8:] = 0.0
    period = seasonal_periods(values, observed, cond)
    assert period[0] % 6 == 0 and period[1] == 1
    target = 1.0 - cond
    held = residual_scale(values, observed, cond)
    seasonal = residual_scale(values, observed, cond, period=period)
    assert bool((seasonal <= held).all()) and seasonal[0] < 0.2 * held[0]
    # the prior's mean with these seasons is the seasonal naive forecast of the horizon
    prior = ResidualPrior(seasonal, period)
    mean = prior.mean(Conditioning(x=values * cond, mask=cond))
    p0, origin = int(period[0]), length - 8
    reach = min(8, p0)  # horizon steps one season back (further ones go back two)
    torch.testing.assert_close(
        mean[:, 0, origin : origin + reach], values[:, 0, origin - p0 : origin - p0 + reach]
    )
    torch.testing.assert_close(mean[:, 1, -8:], values[:, 1, -9:-8].expand(n, 8))
    rms = torch.sqrt((((values - mean) * target) ** 2).sum((0, 2)) / target.sum((0, 2)))
    torch.testing.assert_close(seasonal, rms)
    for bad in ([1, 0, 1], [1, 2], [1.0, 2.0, 3.0]):
        with pytest.raises(ValueError, match="seasons"):
            ResidualPrior(seasonal, torch.tensor(bad))


class UnitNormalResidual(nn.Module):
    """The exact ε̂ for u ~ N(0, I) on a variance-preserving schedule: E[ε | z_t] = σ_t z_t."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.schedule = schedule

    def forward(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        _, sigma = self.schedule.alpha_sigma(t)
        return sigma[:, None, None].to(z_t) * z_t


def _windows(n: int, k: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n, length, k)).astype(np.float32)
    cond = rng.random((n, length, k)) < 0.5
    return values, cond


def test_sampling_through_the_prior_maps_residual_draws_to_values() -> None:
    """A model that ignores the conditioning draws the same residuals u with and without the
    prior (same seed, per-window noise), so the draws under the prior are exactly μ(c) + s·u
    at every target, and the given entries come back as given."""
    schedule = get_schedule("csdi_quad")
    values, cond = _windows(4, 2, 12, seed=0)
    prior = ResidualPrior(torch.tensor([0.3, 2.0]))
    stamps = np.tile(np.arange(12, dtype=np.float32), (4, 1))
    c = torch.from_numpy(cond.transpose(0, 2, 1).astype(np.float32))
    x = torch.from_numpy(values.transpose(0, 2, 1).copy())
    mean = prior.mean(Conditioning(x=x * c, mask=c)).numpy().transpose(0, 2, 1)  # (N, L, K)
    given = np.broadcast_to(cond[:, None], (4, 7, 12, 2))
    for sampler in ("ancestral", "dpm_solver"):
        cfg = replace(SamplingConfig(), sampler=sampler, steps=10, n_samples=7, seed=3)
        draw = partial(
            sample_windows, UnitNormalResidual(schedule), schedule, values, cond, stamps, cfg
        )
        u = draw(torch.device("cpu")).samples  # (N, S, L, K)
        out = draw(torch.device("cpu"), prior=prior).samples
        assert np.array_equal(out[given], np.broadcast_to(values[:, None], out.shape)[given])
        expected = mean[:, None] + prior.scale.numpy() * u
        np.testing.assert_allclose(out[~given], expected[~given], rtol=1e-5, atol=1e-5)


def test_clipping_under_the_prior_bounds_the_values_not_the_residuals() -> None:
    """A runaway model: every drawn value stays inside the bounds in data space, wherever the
    interpolation puts the residual's origin."""
    schedule = get_schedule("csdi_quad")

    class Runaway(nn.Module):
        def forward(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
            return 50.0 * z_t

    values, cond = _windows(3, 2, 10, seed=1)
    values = values * 3.0
    low, high = np.array([-1.0, 0.5]), np.array([1.0, 4.0])
    bounds = ValueBounds(low=low, high=high, data_low=low, data_high=high)
    prior = ResidualPrior(torch.tensor([0.2, 3.0]))

    # the predictor itself: its implied estimate of the value μ + s·û₀ is inside the bounds
    lo, hi = torch.tensor(low, dtype=torch.float32), torch.tensor(high, dtype=torch.float32)
    clipped = ClippedPredictor(Runaway(), schedule, lo, hi, prior=prior)
    c = torch.from_numpy(cond[:2].transpose(0, 2, 1).astype(np.float32))
    given = Conditioning(x=torch.from_numpy(values[:2].transpose(0, 2, 1).copy()) * c, mask=c)
    z = torch.randn(2, 2, 10, generator=torch.Generator().manual_seed(0))
    t = torch.full((2,), 0.4)
    alpha, sigma = schedule.alpha_sigma(t)
    u0 = eps_to_x0(z, clipped(z, t, given), alpha[:, None, None], sigma[:, None, None])
    x0 = prior.decode(u0, given)
    assert (x0 >= lo[:, None] - 1e-4).all() and (x0 <= hi[:, None] + 1e-4).all()
    for sampler in ("ancestral", "dpm_solver", "ddim"):
        cfg = replace(SamplingConfig(), sampler=sampler, steps=8, n_samples=6)
        out = sample_windows(
            Runaway(),
            schedule,
            values,
            cond,
            np.tile(np.arange(10, dtype=np.float32), (3, 1)),
            cfg,
            torch.device("cpu"),
            bounds=bounds,
            prior=prior,
        ).samples
        drawn = ~np.broadcast_to(cond[:, None], out.shape)
        for k in range(2):
            v = out[..., k][drawn[..., k]]
            assert np.isfinite(v).all()
            assert (v >= low[k] - 1e-4).all() and (v <= high[k] + 1e-4).all(), sampler


def test_bound_through_the_prior_adds_the_log_scale_per_value() -> None:
    """−ELBO of x under the prior = −ELBO of u = (x − μ)/s + mean log s over the targets: the
    same time draws and noise (same seed), so the difference is exact."""
    schedule = get_schedule("csdi_quad")
    model = UnitNormalResidual(schedule)
    values, cond = _windows(5, 3, 8, seed=2)
    target = ~cond & (np.random.default_rng(9).random(cond.shape) < 0.7)  # some unobserved
    stamps = np.tile(np.arange(8, dtype=np.float32), (5, 1))
    prior = ResidualPrior(torch.tensor([0.25, 1.0, 4.0]))
    c = torch.from_numpy(cond.transpose(0, 2, 1).astype(np.float32))
    x = torch.from_numpy(values.transpose(0, 2, 1).copy())
    given = Conditioning(x=x * c, mask=c)
    u = prior.encode(x, given).numpy().transpose(0, 2, 1)
    u = np.where(cond, values, u)  # the given entries as given (the model ignores them)
    cpu = torch.device("cpu")
    through = elbo_windows(model, schedule, values, cond, target, stamps, cpu, prior=prior)
    direct = elbo_windows(model, schedule, u, cond, target, stamps, cpu)
    log_s = np.log(prior.scales(given).numpy().transpose(0, 2, 1))  # (N, 1, K)
    jacobian = float((target * log_s).sum() / target.sum())
    assert through.nats_per_value == pytest.approx(direct.nats_per_value + jacobian, abs=1e-5)
    assert through.reconstruction == pytest.approx(direct.reconstruction + jacobian, abs=1e-5)
    assert through.diffusion == pytest.approx(direct.diffusion, abs=1e-6)
    assert through.prior == pytest.approx(direct.prior, abs=1e-6)
