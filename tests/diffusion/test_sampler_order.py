"""Samplers proven to their order and to their chain, on a Gaussian with closed-form dynamics.

Data x ~ N(μ, s²) independently per entry. In the scaled state x = z/α and noise level
σ̃ = σ/α = exp(γ/2) the exact noise prediction is ε̂ = σ̃ (x − μ)/(s² + σ̃²), so the
probability-flow ODE dx/dσ̃ = ε̂ has the solution x(σ̃) − μ = (x(σ̃₀) − μ) √((s² + σ̃²)/(s² + σ̃₀²)).

Order: every deterministic sampler integrates that ODE from t = 1 to the last evaluated grid
point t_e and then returns x̂₀ = μ + (x − μ) s²/(s² + σ̃_e²) there, a fixed linear map. With
the ends fixed and the grid refined between them, the error against the exact flow falls by
2^p per halving of the step: p = 2 for Heun (`ode`) and DPM-Solver++(2M), p = 1 for DDIM (η = 0)
and for `sde` with λ = 1 (Euler on the same ODE in t, one torchsde step per grid interval).
A Heun step that drops its corrector, or a 2M step that drops its history term, is first order.

Chain: with the exact ε̂ every ancestral step is affine in z plus Gaussian noise, so the
sampler's output distribution is exactly Gaussian with a mean and variance that propagate in
closed form (m ← a m + b, v ← a² v + c²). Sample moments are compared with those of the chain
itself — tolerances from the sample count alone, no discretisation allowance — so a wrong noise
scale (σ_t in place of σ_s) cannot hide inside a measured allowance.
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.samplers import LOGSNR_T_LAST, SAMPLERS, make_time_grid, sample
from csdi.diffusion.schedule import NoiseSchedule, get_schedule

K, L = 2, 4
MU = torch.linspace(-1.0, 2.0, K * L, dtype=torch.float64).reshape(K, L)
S = torch.linspace(0.3, 1.5, K * L, dtype=torch.float64).reshape(K, L)


class DiagonalGaussianEps:
    """Exact ε̂(z_t, t) of x ~ N(MU, S²) per entry: σ (z − α μ)/(α² s² + σ²)."""

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule

    def __call__(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        alpha, sigma = self.schedule.alpha_sigma(t.to(torch.float64))
        a, s = alpha.view(-1, 1, 1), sigma.view(-1, 1, 1)
        return s * (z_t - a * MU) / (a**2 * S**2 + s**2)


def sigma_tilde(schedule: NoiseSchedule, t: Tensor) -> Tensor:
    return torch.exp(0.5 * schedule.gamma(t.to(torch.float64)))


def cond_for(n: int) -> Conditioning:
    """n windows with entries (0, 0) and (1, 3) given (value = μ there)."""
    mask = torch.zeros(n, K, L, dtype=torch.float64)
    mask[:, 0, 0] = mask[:, 1, 3] = 1.0
    return Conditioning(x=MU.expand(n, K, L) * mask, mask=mask)


def exact_output(schedule: NoiseSchedule, z1: Tensor) -> Tensor:
    """x̂₀ at t_e of the exact probability-flow solution started from z₁ at t = 1."""
    t = torch.tensor([1.0, LOGSNR_T_LAST], dtype=torch.float64)
    (a1, _), (s1, se) = schedule.alpha_sigma(t[:1]), sigma_tilde(schedule, t)
    x1 = z1 / a1
    xe = MU + (x1 - MU) * torch.sqrt((S**2 + se**2) / (S**2 + s1**2))
    return MU + (xe - MU) * S**2 / (S**2 + se**2)


def sampler_error(
    schedule: NoiseSchedule, sampler: str, ts: Tensor, z1: Tensor, **options: float
) -> float:
    cond = cond_for(z1.shape[0])
    z = z1 * (1.0 - cond.mask)
    out = SAMPLERS[sampler](
        DiagonalGaussianEps(schedule), z, ts, cond, torch.Generator(), schedule=schedule, **options
    )
    target = cond.mask == 0
    expected = exact_output(schedule, z)
    torch.testing.assert_close(out[~target], cond.x[~target], rtol=0, atol=0)
    return float((out - expected)[target].abs().max())


# sde with λ = 1 is Euler on the probability-flow ODE in t, through torchsde, step per interval
SOLVERS = {
    "ode": ("ode", 2, {}),
    "ddim": ("ddim", 1, {}),
    "dpm_solver": ("dpm_solver", 2, {}),
    "sde_pf": ("sde", 1, {"lam": 1.0}),
}


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("schedule_name", ["vp_linear", "cosine", "csdi_quad"])
def test_convergence_order(solver: str, schedule_name: str) -> None:
    """log₂ of the error ratio per halving of the step is the sampler's order (± 0.15).

    The grid is uniform in log-SNR between fixed ends (t = 1 and LOGSNR_T_LAST): a smooth map
    of a uniform grid, so halving its spacing halves every step in σ̃ and in λ alike.
    """
    sampler, order, options = SOLVERS[solver]
    if sampler == "sde" and schedule_name == "csdi_quad":
        pytest.skip("Euler in t: csdi_quad's γ(t) has kinks at its 50 steps, order 1 only beyond")
    schedule = get_schedule(schedule_name)
    z1 = torch.randn(3, K, L, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errors = []
    for intervals in (16, 32, 64, 128):
        ts = make_time_grid(intervals + 1, "logsnr", schedule)  # intervals + 1 evaluated points
        errors.append(sampler_error(schedule, sampler, ts, z1, **options))
    orders = [math.log2(a / b) for a, b in pairwise(errors)]
    for p in orders[1:]:  # the coarsest pair may still be pre-asymptotic
        assert abs(p - order) < 0.15, (errors, orders)


def ancestral_chain_moments(
    schedule: NoiseSchedule, ts: Tensor, prior_var: Tensor
) -> tuple[Tensor, Tensor]:
    """Exact mean and variance of the ancestral sampler's output with the exact ε̂, per entry.

    Step t → s (c = −expm1(γ_s − γ_t)): z_s = (α_s/α_t)(z_t − c σ_t ε̂(z_t)) + √c σ_s ε, with
    ε̂ = σ_t (z_t − α_t μ)/(α_t² s² + σ_t²) affine in z_t; the last call returns
    (z − σ ε̂)/α, also affine. Starting at z₁ ~ N(0, prior_var).
    """
    gamma = schedule.gamma(ts.to(torch.float64)).to(torch.float64)
    alpha, sigma = torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()
    mean, var = torch.zeros_like(MU), prior_var * torch.ones_like(MU)
    m = len(ts) - 1
    for i in range(m - 1):
        at, st, as_, ss = alpha[i], sigma[i], alpha[i + 1], sigma[i + 1]
        c = -torch.expm1(gamma[i + 1] - gamma[i])
        den = at**2 * S**2 + st**2
        slope = (as_ / at) * (1.0 - c * st**2 / den)  # d z_s / d z_t
        offset = (as_ / at) * c * st**2 * at * MU / den
        mean, var = slope * mean + offset, slope**2 * var + c * ss**2
    at, st = alpha[m - 1], sigma[m - 1]
    den = at**2 * S**2 + st**2
    slope = (1.0 - st**2 / den) / at
    offset = st**2 * MU / den
    return slope * mean + offset, slope**2 * var


@pytest.mark.parametrize("schedule_name", ["csdi_quad", "cosine"])
def test_ancestral_samples_follow_their_chain_exactly(schedule_name: str) -> None:
    """Ten coarse steps: sample mean and variance match the chain's within 4.5 standard errors.

    With n samples the mean's standard error is √(v/n) and the variance's √(2/(n−1)) v
    (Gaussian output). Ten steps make the chain far from the true posterior, so the check is
    of the update itself: σ_t for σ_s in the noise term moves the variance by ≫ 4.5 s.e.
    """
    schedule = get_schedule(schedule_name)
    n = 40_000
    ts = make_time_grid(10, "uniform")
    out = sample(
        DiagonalGaussianEps(schedule),
        Conditioning(x=torch.zeros(1, K, L, dtype=torch.float64), mask=torch.zeros(1, K, L)),
        schedule,
        sampler="ancestral",
        steps=10,
        n_samples=n,
        generator=torch.Generator().manual_seed(3),
    )[0]  # (n, K, L)
    mean, var = ancestral_chain_moments(schedule, ts, torch.tensor(1.0, dtype=torch.float64))
    z_mean = (out.mean(0) - mean) / torch.sqrt(var / n)
    z_var = (out.var(0) - var) / (var * math.sqrt(2.0 / (n - 1)))
    assert float(z_mean.abs().max()) < 4.5, z_mean
    assert float(z_var.abs().max()) < 4.5, z_var
