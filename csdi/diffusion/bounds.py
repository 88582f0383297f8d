"""Keeping the clean-value estimate x̂₀ inside a per-feature range, in every sampler.

Static thresholding (Saharia et al. 2022, Imagen, §2.3) per feature: the wrapped predictor's ε̂
is replaced by the ε̂ whose x̂₀ = (z − σ ε̂)/α is clipped to [low_k, high_k]. Every sampler reads
the network only through ε̂ and ends on x̂₀, so each of them keeps its intermediate estimates and
its result inside the range without knowing about it; a drifting input can no longer drive the
estimate to values the series has never approached. Under the residual prior
(`csdi.diffusion.prior`) the estimate is of u = (x − μ)/s, and the range moves with μ.
"""

from __future__ import annotations

import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning, NoisePredictor
from csdi.diffusion.parameterization import eps_to_x0, x0_to_eps
from csdi.diffusion.prior import ResidualPrior
from csdi.diffusion.schedule import NoiseSchedule


class ClippedPredictor:
    """ε̂ of `eps_model` with its implied x̂₀ clipped per feature: low, high (K,) model units."""

    def __init__(
        self,
        eps_model: NoisePredictor,
        schedule: NoiseSchedule,
        low: Tensor,
        high: Tensor,
        *,
        prior: ResidualPrior | None = None,
    ) -> None:
        if low.shape != high.shape or low.dim() != 1 or bool((low > high).any()):
            raise ValueError("low and high must be (K,) with low <= high")
        self.eps_model = eps_model
        self.schedule = schedule
        self.low = low[None, :, None]  # (1, K, 1)
        self.high = high[None, :, None]
        self.prior = prior  # the diffusion runs on residuals: clip x̂₀ in values

    def __call__(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        eps = self.eps_model(z_t, t, cond)
        alpha, sigma = self.schedule.alpha_sigma(t.to(torch.float64))
        a = alpha.to(z_t.dtype)[:, None, None]  # (N, 1, 1)
        s = sigma.to(z_t.dtype)[:, None, None]
        x0 = eps_to_x0(z_t, eps, a, s)
        if self.prior is None:
            x0 = x0.clamp(self.low.to(z_t), self.high.to(z_t))
        else:  # u = (x − μ)/s ∈ [(low − μ)/s, (high − μ)/s]
            mean, scale = self.prior.mean(cond), self.prior.scales(cond).to(z_t)
            x0 = x0.clamp((self.low.to(z_t) - mean) / scale, (self.high.to(z_t) - mean) / scale)
        return x0_to_eps(z_t, x0, a, s)


def clip_targets(x: Tensor, given: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """x (..., K, L) with the entries not `given` (broadcastable bool) clipped to [low, high]
    (K,): the last safeguard after a sampler, against rounding in the final x̂₀."""
    clipped = x.clamp(low.to(x)[:, None], high.to(x)[:, None])
    return torch.where(given, x, clipped)
