"""The forward SDE's coefficients against its marginals, and the reverse SDE object."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from csdi.diffusion.schedule import get_schedule
from csdi.diffusion.sde import VPSDE

SCHEDULES = ["csdi_quad", "vp_linear", "cosine", "learned"]
CHECK_TIMES = (0.3, 0.6, 1.0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small tensors: intra-op threads only add contention on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def euler_maruyama_forward(
    sde: VPSDE, x0: float, n_paths: int, n_steps: int, generator: torch.Generator
) -> dict[float, torch.Tensor]:
    """Paths of dz = f z dt + g dW from z_0 ~ q(z_0 | x0), Euler–Maruyama, recorded at CHECK_TIMES.

    Steps are uniform in γ (dt ∝ 1/γ'), so f·dt = −½σ²Δγ stays small even where γ' is large
    (cosine near t = 1); the check times are added to the grid.
    """
    sched = sde.schedule
    with torch.no_grad():
        gammas = torch.linspace(sched.gamma_min, sched.gamma_max, n_steps + 1, dtype=torch.float64)
        grid = sched.t_of_gamma(gammas).to(torch.float64)
    grid = torch.cat([grid, torch.tensor([0.0, *CHECK_TIMES], dtype=torch.float64)])
    grid = torch.unique(grid)  # sorted ascending
    with torch.no_grad():
        a0, s0 = sched.alpha_sigma(torch.zeros((), dtype=torch.float64))
    z = float(a0) * x0 + float(s0) * torch.randn(n_paths, generator=generator, dtype=torch.float64)
    out = {}
    for t, t_next in zip(grid[:-1].tolist(), grid[1:].tolist(), strict=True):
        tt = torch.tensor(t, dtype=torch.float64)
        dt = t_next - t
        with torch.no_grad():
            f, g2 = float(sde.f(tt)), float(sde.g2(tt))
        dw = math.sqrt(dt) * torch.randn(n_paths, generator=generator, dtype=torch.float64)
        z = z + f * z * dt + math.sqrt(max(g2, 0.0)) * dw
        for c in CHECK_TIMES:
            if abs(t_next - c) < 1e-12:
                out[c] = z
    return out


@pytest.mark.parametrize("name", SCHEDULES)
def test_forward_sde_reproduces_marginals(name: str) -> None:
    """Mean α_t x0 and variance σ_t² of the simulated z_t.

    Tolerance: 4 standard errors (mean: σ_t/√n; variance: σ_t²√(2/n)) plus the Euler bias. With
    steps uniform in γ, |f dt| ≤ ½Δγ ≈ 0.02, and Euler's relative bias in the variance and mean is
    about ½|f dt| summed into a relative 1.5 % (allowance 0.015 σ_t² and 0.015 |α_t x0|).
    """
    sde = VPSDE(get_schedule(name))
    x0, n = 1.5, 40_000
    paths = euler_maruyama_forward(sde, x0, n, 1200, torch.Generator().manual_seed(0))
    for t, z in paths.items():
        tt = torch.tensor(t, dtype=torch.float64)
        with torch.no_grad():
            alpha, sigma = (float(v) for v in sde.schedule.alpha_sigma(tt))
        mean_tol = 4.0 * sigma / math.sqrt(n) + 0.015 * alpha * x0
        var_tol = 4.0 * sigma**2 * math.sqrt(2.0 / n) + 0.015 * sigma**2
        assert abs(float(z.mean()) - alpha * x0) < mean_tol, (t, float(z.mean()), alpha * x0)
        assert abs(float(z.var()) - sigma**2) < var_tol, (t, float(z.var()), sigma**2)


def test_vp_linear_coefficients_are_beta() -> None:
    """Song et al. 2021: f = −β/2, g² = β (times the constant dτ/dt = 1 − ε of the cut-off)."""
    sched = get_schedule("vp_linear")
    sde = VPSDE(sched)
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    beta = (0.1 + (1e-5 + (1 - 1e-5) * t) * (20.0 - 0.1)) * (1 - 1e-5)
    torch.testing.assert_close(sde.g2(t), beta)
    torch.testing.assert_close(sde.f(t), -0.5 * beta)


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_reverse_sde_coefficients(lam: float) -> None:
    """In s = 1 − t: drift −[f z − (1 − λ/2) g² s_θ], diffusion √(1 − λ) g; zero on cond entries."""
    sched = get_schedule("vp_linear")
    sde = VPSDE(sched)
    gen = torch.Generator().manual_seed(0)
    eps_value = torch.randn(4, 2, 3, generator=gen, dtype=torch.float64)
    target = (torch.rand(4, 2, 3, generator=gen) < 0.5).to(torch.float64)
    rev = sde.reverse(lambda z, t: eps_value, target, lam=lam)
    assert (rev.noise_type, rev.sde_type) == ("diagonal", "ito")
    y = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    s = torch.tensor(0.3, dtype=torch.float64)
    t = torch.tensor(0.7, dtype=torch.float64)
    sigma = sched.sigma2(t).sqrt()
    score = (-eps_value / sigma).reshape(4, 6)
    drift = sched.f(t) * y - (1 - lam / 2) * sched.g2(t) * score
    tm = target.reshape(4, 6)
    torch.testing.assert_close(rev.f(s, y), -drift * tm)
    torch.testing.assert_close(rev.g(s, y), math.sqrt(1 - lam) * sched.g2(t).sqrt() * tm)
    with pytest.raises(ValueError, match="lam"):
        sde.reverse(lambda z, t: eps_value, target, lam=1.5)
