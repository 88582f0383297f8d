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
from csdi.diffusion.prior import (
    EIGEN_FLOOR,
    ResidualPrior,
    autocovariance,
    gaussian_frame,
    gaussian_scale,
    residual_scale,
    window_covariance,
)
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


def _smooth_autocovariance(k: int, length: int) -> Tensor:
    """(K, L): a squared-exponential autocovariance of length scale 3 steps plus a nugget."""
    lags = torch.arange(length, dtype=torch.float64)
    c = torch.exp(-(lags**2) / 18.0)
    c[0] += 1e-2
    return c.repeat(k, 1) * torch.linspace(0.5, 2.0, k, dtype=torch.float64)[:, None]


def _prior(kind: str, scale: list[float], length: int) -> ResidualPrior:
    autocov = _smooth_autocovariance(len(scale), length) if kind == "gaussian" else None
    return ResidualPrior(torch.tensor(scale), autocov)


@pytest.mark.parametrize("kind", ["interpolation", "gaussian"])
def test_sampling_through_the_prior_maps_residual_draws_to_values(kind: str) -> None:
    """A model that ignores the conditioning draws the same residuals u with and without the
    prior (same seed, per-window noise), so the draws under the prior are exactly μ(c) + s·u
    at every target, and the given entries come back as given."""
    schedule = get_schedule("csdi_quad")
    values, cond = _windows(4, 2, 12, seed=0)
    prior = _prior(kind, [0.3, 2.0], 12)
    stamps = np.tile(np.arange(12, dtype=np.float32), (4, 1))
    c = torch.from_numpy(cond.transpose(0, 2, 1).astype(np.float32))
    x = torch.from_numpy(values.transpose(0, 2, 1).copy())
    frame = Conditioning(x=x * c, mask=c)
    mean = prior.mean(frame).numpy().transpose(0, 2, 1)  # (N, L, K)
    scale = prior.scales(frame).numpy().transpose(0, 2, 1)[:, None]  # (N, 1, L or 1, K)
    given = np.broadcast_to(cond[:, None], (4, 7, 12, 2))
    for sampler in ("ancestral", "dpm_solver"):
        cfg = replace(SamplingConfig(), sampler=sampler, steps=10, n_samples=7, seed=3)
        draw = partial(
            sample_windows, UnitNormalResidual(schedule), schedule, values, cond, stamps, cfg
        )
        u = draw(torch.device("cpu")).samples  # (N, S, L, K)
        out = draw(torch.device("cpu"), prior=prior).samples
        assert np.array_equal(out[given], np.broadcast_to(values[:, None], out.shape)[given])
        expected = mean[:, None] + scale * u
        np.testing.assert_allclose(out[~given], expected[~given], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["interpolation", "gaussian"])
def test_clipping_under_the_prior_bounds_the_values_not_the_residuals(kind: str) -> None:
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
    prior = _prior(kind, [0.2, 3.0], 10)

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


@pytest.mark.parametrize("kind", ["interpolation", "gaussian"])
def test_bound_through_the_prior_adds_the_log_scale_per_value(kind: str) -> None:
    """−ELBO of x under the prior = −ELBO of u = (x − μ)/s + mean log s over the targets: the
    same time draws and noise (same seed), so the difference is exact."""
    schedule = get_schedule("csdi_quad")
    model = UnitNormalResidual(schedule)
    values, cond = _windows(5, 3, 8, seed=2)
    target = ~cond & (np.random.default_rng(9).random(cond.shape) < 0.7)  # some unobserved
    stamps = np.tile(np.arange(8, dtype=np.float32), (5, 1))
    prior = _prior(kind, [0.25, 1.0, 4.0], 8)
    c = torch.from_numpy(cond.transpose(0, 2, 1).astype(np.float32))
    x = torch.from_numpy(values.transpose(0, 2, 1).copy())
    given = Conditioning(x=x * c, mask=c)
    u = prior.encode(x, given).numpy().transpose(0, 2, 1)
    u = np.where(cond, values, u)  # the given entries as given (the model ignores them)
    cpu = torch.device("cpu")
    through = elbo_windows(model, schedule, values, cond, target, stamps, cpu, prior=prior)
    direct = elbo_windows(model, schedule, u, cond, target, stamps, cpu)
    log_s = np.log(prior.scales(given).numpy().transpose(0, 2, 1))  # (N, 1 or L, K)
    jacobian = float((target * log_s).sum() / target.sum())
    assert through.nats_per_value == pytest.approx(direct.nats_per_value + jacobian, abs=1e-5)
    assert through.reconstruction == pytest.approx(direct.reconstruction + jacobian, abs=1e-5)
    assert through.diffusion == pytest.approx(direct.diffusion, abs=1e-6)
    assert through.prior == pytest.approx(direct.prior, abs=1e-6)


def _ar1(n: int, length: int, phi: float, seed: int) -> Tensor:
    """(N, 1, L) stationary AR(1) windows x_l = φ x_{l−1} + ε_l, ε ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(n, 1, length, dtype=torch.float64)
    x[:, 0, 0] = torch.randn(n, generator=g, dtype=torch.float64) / math.sqrt(1 - phi**2)
    for step in range(1, length):
        x[:, 0, step] = phi * x[:, 0, step - 1] + torch.randn(n, generator=g, dtype=torch.float64)
    return x


def test_gaussian_frame_is_the_ar1_conditional() -> None:
    """For an AR(1) with φ and unit innovations: a lone hidden step between two given ones has
    mean φ(a + b)/(1 + φ²) and variance 1/(1 + φ²); h steps past the last given value, mean
    φʰ·x and variance (1 − φ²ʰ)/(1 − φ²); a window with nothing given, mean 0 and the
    stationary variance 1/(1 − φ²)."""
    phi, length = 0.8, 10
    autocov = torch.tensor([[phi**lag / (1 - phi**2) for lag in range(length)]])
    sigma = window_covariance(autocov)
    x = torch.tensor([[[0.3, -1.0, 0.0, 2.0, 0.5, 1.5, 0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    given = torch.tensor([[[1, 1, 0, 1, 1, 1, 0, 0, 0, 0]]], dtype=torch.bool)
    mean, std = gaussian_frame(x * given, given, sigma)
    tol = {"rtol": 1e-4, "atol": 1e-4}  # the eigenvalue floor moves Σ by ~1e-5 of its variance
    torch.testing.assert_close(
        mean[0, 0, 2], torch.tensor(phi * (-1.0 + 2.0) / (1 + phi**2), dtype=torch.float64), **tol
    )
    torch.testing.assert_close(
        std[0, 0, 2] ** 2, torch.tensor(1 / (1 + phi**2), dtype=torch.float64), **tol
    )
    for h in range(1, 5):
        torch.testing.assert_close(
            mean[0, 0, 5 + h], torch.tensor(phi**h * 1.5, dtype=torch.float64), **tol
        )
        var = (1 - phi ** (2 * h)) / (1 - phi**2)
        torch.testing.assert_close(
            std[0, 0, 5 + h] ** 2, torch.tensor(var, dtype=torch.float64), **tol
        )
    assert torch.equal(mean[given], x[given])  # the given values themselves
    empty = torch.zeros_like(given)
    mean, std = gaussian_frame(x * 0, empty, sigma)
    assert float(mean.abs().max()) == 0.0
    torch.testing.assert_close(std**2, torch.full_like(std, 1 / (1 - phi**2)), **tol)


def test_gaussian_frame_matches_dense_kriging_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random masks, two features with their own covariances, against Σ_ho Σ_oo⁻¹ x_o and the
    Schur complement computed densely per window; the same when split into small chunks."""
    n, k, length = 5, 2, 9
    autocov = _smooth_autocovariance(k, length)
    sigma = window_covariance(autocov)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(n, k, length, generator=g, dtype=torch.float64)
    given = torch.rand(n, k, length, generator=g) < 0.4
    given[0, 1] = False  # a feature with nothing given
    mean, std = gaussian_frame(x * given, given, sigma)
    for i in range(n):
        for f in range(k):
            o, h = given[i, f], ~given[i, f]
            s = sigma[f]
            if o.any():
                gain = s[h][:, o] @ torch.linalg.inv(s[o][:, o])
                m, v = gain @ x[i, f, o], s[h][:, h] - gain @ s[o][:, h]
            else:
                m, v = torch.zeros(int(h.sum()), dtype=torch.float64), s
            torch.testing.assert_close(mean[i, f, h], m, rtol=1e-6, atol=1e-8)
            torch.testing.assert_close(std[i, f, h] ** 2, torch.diagonal(v).clamp_min(1e-6))
    monkeypatch.setattr("csdi.diffusion.prior.FRAME_CHUNK", 3 * length * length)
    chunked = gaussian_frame(x * given, given, sigma)
    torch.testing.assert_close(chunked[0], mean)
    torch.testing.assert_close(chunked[1], std)


def test_autocovariance_and_scale_from_ar1_windows() -> None:
    """Windows of an AR(1) with 20 % of the steps unobserved: C(τ) within sampling error of
    φ^τ/(1 − φ²); under that fitted covariance the standardised residuals of held-out steps
    have unit root mean square (s ≈ 1)."""
    phi = 0.7
    x = _ar1(3000, 12, phi, seed=0)
    g = torch.Generator().manual_seed(1)
    observed = (torch.rand(x.shape, generator=g) > 0.2).to(torch.float64)
    autocov = autocovariance(x * observed, observed)
    exact = torch.tensor([phi**lag / (1 - phi**2) for lag in range(12)], dtype=torch.float64)
    torch.testing.assert_close(autocov[0], exact, rtol=0, atol=0.08)
    cond = observed * (torch.rand(x.shape, generator=g) > 0.3)
    scale = gaussian_scale(x.float(), observed.float(), cond.float(), window_covariance(autocov))
    assert scale.shape == (1,) and abs(float(scale[0]) - 1.0) < 0.03


def test_window_covariance_repairs_an_invalid_autocovariance() -> None:
    """An 'autocovariance' no process has (C(1) > C(0)): the Toeplitz matrix is made symmetric
    positive definite, its eigenvalues at least the floor's share of the variance."""
    sigma = window_covariance(torch.tensor([[1.0, 1.2, -0.9, 0.0, 0.4]], dtype=torch.float64))
    torch.testing.assert_close(sigma, sigma.transpose(-1, -2), rtol=0, atol=0)
    assert float(torch.linalg.eigvalsh(sigma).min()) >= EIGEN_FLOOR * 0.999
    torch.linalg.cholesky(sigma)  # raises if not positive definite


def test_attached_frame_follows_repeat_slice_and_device() -> None:
    """`attach` computes (μ, scale) once; repeat, slice and `to` carry them row for row, and
    mean/scales read them instead of recomputing."""
    prior = _prior("gaussian", [0.5, 2.0], 6)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 6, generator=g)
    mask = (torch.rand(3, 2, 6, generator=g) < 0.5).float()
    cond = prior.attach(Conditioning(x=x * mask, mask=mask))
    assert cond.frame is not None
    torch.testing.assert_close(cond.frame[0], prior.mean(Conditioning(x=x * mask, mask=mask)))
    rep = cond.repeat(4).slice(4, 8).to("cpu")  # window 1, four times
    assert rep.frame is not None
    torch.testing.assert_close(rep.frame[1], cond.frame[1][1:2].expand(4, 2, 6))
    poisoned = replace(cond, frame=(torch.full_like(x, 7.0), torch.ones_like(x)))
    assert float(prior.mean(poisoned).min()) == 7.0
    torch.testing.assert_close(prior.encode(x, poisoned), x - 7.0)
