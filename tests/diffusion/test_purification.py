"""Purification: noisy observations denoised by the reverse process, against the exact Gaussian
posterior of clean given noisy values.

x ~ N(μ, Σ) per window (K = 2, L = 3), observed as y = x + s·n. Then x | y ~ N(m, C) with
C = (Σ⁻¹ + P/s²)⁻¹ and m = C(Σ⁻¹μ + P y/s²), P the observed entries. With the exact noise
predictor, `ancestral(noisy=…)` must sample that posterior.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.gaussian import GaussianOracle
from csdi.diffusion.samplers import NoisyValues, sample
from csdi.diffusion.schedule import get_schedule
from csdi.metrics import crps_exact

K, L = 2, 3
D = K * L


def _oracle() -> GaussianOracle:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(D, D, generator=g, dtype=torch.float64)
    cov = a @ a.T / D + 0.3 * torch.eye(D, dtype=torch.float64)
    return GaussianOracle(
        torch.linspace(-1.0, 1.0, D, dtype=torch.float64), cov, (K, L), get_schedule("cosine")
    )


class UnconditionalEps:
    """oracle.eps with no cond entries, evaluated through its affine form ε̂ = a + M z: the D + 1
    oracle rows at z = 0, e_1 … e_D give (a, M) once per step instead of D×D algebra per row."""

    def __init__(self, oracle: GaussianOracle) -> None:
        self.oracle = oracle
        basis = torch.cat([torch.zeros(1, D), torch.eye(D)]).to(torch.float64)  # (D + 1, D)
        self.basis = basis.reshape(D + 1, K, L)
        self.empty = Conditioning(x=torch.zeros_like(self.basis), mask=torch.zeros_like(self.basis))

    def __call__(self, z: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        e = self.oracle.eps(self.basis, t[:1].expand(D + 1), self.empty).reshape(D + 1, D)
        a, m = e[0], e[1:] - e[0]  # ε̂(z) = a + zᵀM row-wise
        return (a + z.reshape(-1, D).to(torch.float64) @ m).reshape(z.shape).to(z.dtype)


def exact_posterior(
    oracle: GaussianOracle, y: Tensor, observed: Tensor, s: float, start: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Mean (N, D) and covariance (N, D, D) of x | y for y (N, D) observed where `observed`.

    With a start r > 1 the law of the samples is x | y' with y' = y + √(r² − 1)·s·ξ: the
    posterior at noise r·s, C_r = (Σ⁻¹ + P/(rs)²)⁻¹, m_r(y') = C_r(Σ⁻¹μ + P y'/(rs)²), averaged
    over ξ: mean m_r(y), covariance C_r + G (r² − 1)s² P Gᵀ with G = C_r P/(rs)²."""
    prec = torch.linalg.inv(oracle.cov)
    level = (start * s) ** 2
    p = torch.diag_embed(observed.to(torch.float64))  # (N, D, D)
    cov = torch.linalg.inv(prec + p / level)
    mean = cov @ (prec @ oracle.mean + (p @ y.unsqueeze(-1)).squeeze(-1) / level).unsqueeze(-1)
    gain = cov @ p / level
    spread = gain @ p @ gain.transpose(-1, -2) * (start**2 - 1.0) * s**2
    return mean.squeeze(-1), cov + spread


@pytest.mark.parametrize(("missing", "start"), [(0.0, 1.0), (0.3, 1.0), (0.0, 2.0)])
def test_purified_samples_follow_the_exact_posterior(missing: float, start: float) -> None:
    """CRPS against the clean values within 5 % of exact posterior samples' (and the moments of
    the fully observed case within 4.5 standard errors of the sample count). A start above the
    matched level samples the law of its docstring (`exact_posterior`), worse than x | y."""
    oracle = _oracle()
    g = torch.Generator().manual_seed(1)
    n, n_samples, s = 64, 200, 0.5
    chol = torch.linalg.cholesky(oracle.cov)
    x = oracle.mean + torch.randn(n, D, generator=g, dtype=torch.float64) @ chol.T  # (N, D)
    y = x + s * torch.randn(n, D, generator=g, dtype=torch.float64)
    observed = torch.rand(n, D, generator=g) >= missing  # the rest are missing outright
    empty = Conditioning(
        x=torch.zeros(n, K, L, dtype=torch.float64), mask=torch.zeros(n, K, L, dtype=torch.float64)
    )
    noisy = NoisyValues(
        y=y.reshape(n, K, L),
        mask=observed.reshape(n, K, L).to(torch.float64),
        std=torch.full((n, K, L), s, dtype=torch.float64),
        start=start,
    )
    out = sample(
        UnconditionalEps(oracle),
        empty,
        oracle.schedule,
        sampler="ancestral",
        steps=200,
        n_samples=n_samples,
        generator=torch.Generator().manual_seed(2),
        noisy=noisy,
    ).reshape(n, n_samples, D)
    mean, cov = exact_posterior(oracle, y, observed, s, start)
    exact = mean[:, None] + torch.randn(
        n, n_samples, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    ) @ torch.linalg.cholesky(cov).transpose(-1, -2)
    every = torch.ones(n, D, 1, dtype=torch.bool).numpy()  # (N, L = D, K = 1)
    ours = crps_exact(out[..., None].numpy(), x[..., None].numpy(), every)
    best = crps_exact(exact[..., None].numpy(), x[..., None].numpy(), every)
    assert ours < 1.05 * best, (ours, best)
    if start > 1.0:  # more injected noise than the data carry: worse than the matched start
        m1, c1 = exact_posterior(oracle, y, observed, s)
        matched = m1[:, None] + torch.randn(
            n, n_samples, D, generator=torch.Generator().manual_seed(4), dtype=torch.float64
        ) @ torch.linalg.cholesky(c1).transpose(-1, -2)
        assert crps_exact(matched[..., None].numpy(), x[..., None].numpy(), every) < 0.95 * ours
    if missing == 0.0:  # the exact case: moments, whitened by the posterior covariance
        w = torch.linalg.solve_triangular(
            torch.linalg.cholesky(cov), (out - mean[:, None]).transpose(-1, -2), upper=False
        )  # (N, D, S)
        se_mean = 1.0 / math.sqrt(n_samples)
        assert float(w.mean(-1).abs().max()) < 4.5 * se_mean * math.sqrt(2 * math.log(n * D))
        assert abs(float(w.pow(2).mean()) - 1.0) < 4.5 * math.sqrt(2.0 / (n * D * n_samples))
