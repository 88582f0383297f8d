"""The one place where noise, score and clean-data predictions are converted into each other.

With z_t = α_t x + σ_t ε (VDM; Ho et al. 2020):
    score s(z_t) = −ε̂ / σ_t,        x̂₀ = (z_t − σ_t ε̂) / α_t,        ε̂ = (z_t − α_t x̂₀) / σ_t.
`alpha` and `sigma` broadcast against `z` (pass them shaped (N, 1, 1) for z of shape (N, K, L)).
"""

from __future__ import annotations

from torch import Tensor


def eps_to_score(eps: Tensor, sigma: Tensor) -> Tensor:
    """s = −ε̂/σ (Tweedie / denoising score matching identity)."""
    return -eps / sigma


def eps_to_x0(z: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """x̂₀ = (z − σ ε̂)/α."""
    return (z - sigma * eps) / alpha


def x0_to_eps(z: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """ε̂ = (z − α x̂₀)/σ."""
    return (z - alpha * x0) / sigma
