"""Noise schedules: monotone γ, prior-matching end points, γ' against a finite difference, the
forward-SDE moment ODEs, CSDI's discrete ᾱ_n, the VP-linear coefficients, the inverse t(γ) and
the registry."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from csdi.diffusion.schedule import SCHEDULES, NoiseSchedule, VPLinearSchedule, get_schedule

DT = torch.float64
NAMES = sorted(SCHEDULES)


def _schedule(name: str) -> NoiseSchedule:
    return get_schedule(name).to(DT)


def _random_t(n: int, seed: int) -> Tensor:
    # away from the ends (central differences) and, with probability 1, from csdi_quad's knots
    return 0.01 + 0.98 * torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=DT)


@pytest.mark.parametrize("name", NAMES)
def test_gamma_strictly_increasing(name: str) -> None:
    with torch.no_grad():
        gamma = _schedule(name).gamma(torch.linspace(0.0, 1.0, 20001, dtype=DT))
    assert bool(torch.isfinite(gamma).all())
    assert bool((gamma.diff() > 0).all())


@pytest.mark.parametrize("name", NAMES)
def test_variance_preserving(name: str) -> None:
    s = _schedule(name)
    t = torch.linspace(0.0, 1.0, 101, dtype=DT)
    with torch.no_grad():
        # the prior N(0, I) matches the end of the forward process, the data its start
        assert float(s.sigma2(t[-1:])) > 0.99 and float(s.alpha2(t[:1])) > 0.99
        alpha, sigma = s.alpha_sigma(t)
        torch.testing.assert_close(alpha**2, s.alpha2(t), rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(sigma**2, s.sigma2(t), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_dgamma_dt_matches_a_finite_difference(name: str) -> None:
    s = _schedule(name)
    t = _random_t(64, seed=1)
    t = t.clamp(1e-3, 1.0 - 1e-3)
    h = 1e-6
    with torch.no_grad():
        central = (s.gamma(t + h) - s.gamma(t - h)) / (2.0 * h)  # O(h²) + rounding ≈ 1e-9
    # closed forms and the autograd fallback alike against a finite difference
    torch.testing.assert_close(s.dgamma_dt(t), central, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(NoiseSchedule.dgamma_dt(s, t), central, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_drift_and_diffusion_solve_the_moment_odes(name: str) -> None:
    # for dz = f z dt + g dW with z_t | x ~ N(α x, σ²): dα/dt = f α, dσ²/dt = 2 f σ² + g²
    s = _schedule(name)
    t = _random_t(64, seed=2).requires_grad_(True)
    alpha, _ = s.alpha_sigma(t)
    sigma2 = s.sigma2(t)
    (d_alpha,) = torch.autograd.grad(alpha.sum(), t)
    (d_sigma2,) = torch.autograd.grad(sigma2.sum(), t)
    with torch.no_grad():
        f, g2 = s.f(t), s.g2(t)
        torch.testing.assert_close(d_alpha, f * alpha, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(d_sigma2, 2 * f * sigma2 + g2, rtol=1e-9, atol=1e-12)
        assert bool((g2 > 0).all())


def test_csdi_quad_reproduces_csdi_alpha_bar() -> None:
    s = _schedule("csdi_quad")
    beta = torch.linspace(1e-4**0.5, 0.5**0.5, 50, dtype=DT) ** 2
    alpha_bar = torch.cumprod(1.0 - beta, 0)
    t = torch.arange(1, 51, dtype=DT) / 50
    torch.testing.assert_close(s.alpha2(t), alpha_bar, rtol=1e-12, atol=1e-12)


def test_vp_linear_coefficients() -> None:
    s = VPLinearSchedule().to(DT)
    t = _random_t(64, seed=3)
    eps = 1e-5
    beta = 0.1 + (eps + (1 - eps) * t) * (20.0 - 0.1)
    torch.testing.assert_close(s.f(t), -0.5 * beta * (1 - eps), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s.g2(t), beta * (1 - eps), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_t_of_gamma_inverts_gamma(name: str) -> None:
    s = _schedule(name)
    t = torch.rand(64, generator=torch.Generator().manual_seed(4), dtype=DT)
    with torch.no_grad():
        back = s.t_of_gamma(s.gamma(t))
    torch.testing.assert_close(back, t, rtol=0, atol=1e-9)


def test_unknown_schedule_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"'nope'.*cosine.*csdi_quad.*learned.*vp_linear"):
        get_schedule("nope")
