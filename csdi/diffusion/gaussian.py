"""Exact conditional Gaussian: the oracle noise predictor and likelihood for x ~ N(μ, Σ).

For x ∈ R^D (D = K·L, flattened in C order from (K, L)) with the `cond` entries observed,
x_T | x_C ~ N(m, C) with m = μ_T + Σ_TC Σ_CC⁻¹ (x_C − μ_C) and C = Σ_TT − Σ_TC Σ_CC⁻¹ Σ_CT.
Under z_T = α x_T + σ ε, p(z_T) = N(α m, α² C + σ² I), so the exact noise prediction is
E[ε | z_T] = −σ ∇ log p(z_T) = σ (α² C + σ² I)⁻¹ (z_T − α m).
Masks may differ per batch row; every row is handled by batched D×D algebra, so keep D small.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.schedule import NoiseSchedule


class GaussianOracle:
    """x ~ N(mean, cov) over windows of shape (K, L); dtype float64 for exactness."""

    def __init__(self, mean: Tensor, cov: Tensor, shape: tuple[int, int], schedule: NoiseSchedule):
        d = shape[0] * shape[1]
        if mean.shape != (d,) or cov.shape != (d, d):
            raise ValueError(f"mean must be ({d},) and cov ({d}, {d}) for windows of shape {shape}")
        self.mean = mean.to(torch.float64)
        self.cov = cov.to(torch.float64)
        self.shape = shape
        self.schedule = schedule

    def conditional(self, cond: Conditioning) -> tuple[Tensor, Tensor]:
        """Mean (N, D) and covariance (N, D, D) of x given its cond entries.

        Rows/columns of cond entries are exactly zero in the covariance, and the mean equals x
        there, so the result is the full-D Gaussian with the observed part degenerate.
        """
        n = cond.batch_size
        d = self.mean.shape[0]
        mc = cond.mask.reshape(n, d).to(torch.float64)  # (N, D)
        xc = cond.x.reshape(n, d).to(torch.float64)
        mc_diag = torch.diag_embed(mc)  # (N, D, D)
        # Σ_CC padded with the identity on non-cond entries, so it is invertible
        s_cc = mc_diag @ self.cov @ mc_diag + torch.diag_embed(1.0 - mc)
        gain = self.cov @ mc_diag @ torch.linalg.inv(s_cc) @ mc_diag  # (N, D, D) = Σ_·C Σ_CC⁻¹
        mean = self.mean + (gain @ (xc - self.mean).unsqueeze(-1)).squeeze(-1)
        cov = self.cov - gain @ self.cov
        tm = torch.diag_embed(1.0 - mc)
        cov = tm @ cov @ tm  # exact zeros on cond rows/cols
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        mean = mc * xc + (1.0 - mc) * mean
        return mean, cov

    def eps(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        """Exact ε̂(z_t, t | x_C) on the non-cond entries (0 on cond entries); (N, K, L)."""
        n = z_t.shape[0]
        d = self.mean.shape[0]
        mean, cov = self.conditional(cond)
        g = self.schedule.gamma(t.to(torch.float64))
        a2, s2 = torch.sigmoid(-g), torch.sigmoid(g)  # (N,)
        tmask = 1.0 - cond.mask.reshape(n, d).to(torch.float64)
        # (α²C + σ²I) on target entries, identity elsewhere: keeps the solve well posed
        a = a2[:, None, None] * cov + s2[:, None, None] * torch.diag_embed(tmask)
        a = a + torch.diag_embed(1.0 - tmask)
        resid = tmask * (z_t.reshape(n, d).to(torch.float64) - a2.sqrt()[:, None] * mean)
        out = s2.sqrt()[:, None] * torch.linalg.solve(a, resid.unsqueeze(-1)).squeeze(-1)
        return (tmask * out).reshape(z_t.shape).to(z_t.dtype)

    def log_prob_target(self, x: Tensor, cond: Conditioning) -> Tensor:
        """Exact log p(x_T | x_C), (N,), over the non-cond entries of x (N, K, L)."""
        n = x.shape[0]
        d = self.mean.shape[0]
        mean, cov = self.conditional(cond)
        tmask = 1.0 - cond.mask.reshape(n, d).to(torch.float64)
        cov_reg = cov + torch.diag_embed(1.0 - tmask)  # unit variance on cond entries …
        resid = tmask * (x.reshape(n, d).to(torch.float64) - mean)  # … where the residual is 0
        chol = torch.linalg.cholesky(cov_reg)
        sol = torch.cholesky_solve(resid.unsqueeze(-1), chol).squeeze(-1)
        logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        n_t = tmask.sum(-1)
        return -0.5 * ((resid * sol).sum(-1) + logdet + n_t * math.log(2 * math.pi))

    def sample_conditional(
        self, cond: Conditioning, n_samples: int, generator: torch.Generator
    ) -> Tensor:
        """Exact samples of x given its cond entries: (N, S, K, L)."""
        n = cond.batch_size
        d = self.mean.shape[0]
        mean, cov = self.conditional(cond)
        chol = torch.linalg.cholesky(cov + 1e-12 * torch.eye(d, dtype=torch.float64))
        noise = torch.randn(n, n_samples, d, generator=generator, dtype=torch.float64)
        draws = mean[:, None, :] + noise @ chol.transpose(-1, -2)
        mc = cond.mask.reshape(n, 1, d).to(torch.float64)
        draws = mc * mean[:, None, :] + (1.0 - mc) * draws
        return draws.reshape(n, n_samples, *self.shape)
