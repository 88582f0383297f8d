"""A data-dependent prior: diffuse the residual from the interpolation, not the value.

PriorGrad (Lee et al. 2022, ICLR) replaces the N(0, I) prior of a conditional diffusion model by
N(μ(c), Σ(c)) computed from the condition, and shows that the network then has less to learn
and trains faster. Here μ is the linear interpolation in time of the conditioning values
(`linear_fill`, constant beyond the last given value) and Σ = diag(s_k²) holds one scale per
feature, the root mean square of x − μ over training targets (`residual_scale`); where a window
gives a feature no value, μ = 0 and the scale is 1 (CSDI's prior). Beyond the last given value
(a forecast's horizon, a gap at a window's end) μ can repeat the feature's last season instead
of holding its last value — the seasonal naive forecast — with the season chosen per feature as
the one that leaves the training targets the smallest residual (`seasonal_periods`; 1 where no
season helps, so a random walk keeps its last value). The diffusion runs on

    u = (x − μ(c)) / s        and returns        x = μ(c) + s · u,

so every sampler, objective and bound applies unchanged to u. On smooth series, where the
interpolation is already close, u is the part still unknown at unit scale: an error ε in the
network's estimate of u costs s·ε in the data. The change of variables adds log s_k per target
value to the negative log-likelihood (`log_scale_per_value`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.interpolation import extend_seasonally, linear_fill

#: Diffusion priors: "zero" is CSDI's N(0, I) on the normalised values, "interpolation" the
#: residual prior of this module.
PRIOR_MEANS = ("zero", "interpolation")


def interpolate_and_extend(x: Tensor, given: Tensor, period: Tensor | None) -> Tensor:
    """x, given (..., K, L) → (..., K, L): `linear_fill`, with the seasons `period` (K,)
    repeated beyond the given values when not None (`extend_seasonally`)."""
    fill = linear_fill(x, given)
    return fill if period is None else extend_seasonally(fill, given, period)


@dataclass(frozen=True)
class ResidualPrior:
    """The affine frame x = μ(c) + s·u of the residual prior; scale (K,) in normalised units,
    period (K,) integers ≥ 1: the season μ repeats beyond the given values (None: 1, the last
    value held).

    Where a window gives a feature no value at all, there is nothing to interpolate: μ = 0 and
    the scale is 1 there, CSDI's N(0, I) prior on that feature of that window (`scales`)."""

    scale: Tensor
    period: Tensor | None = None

    def __post_init__(self) -> None:
        finite = bool(torch.isfinite(self.scale).all())
        if self.scale.dim() != 1 or len(self.scale) == 0 or not finite:
            raise ValueError("the residual scale must be (K,) with K > 0, finite")
        if not bool((self.scale > 0).all()):
            raise ValueError("the residual scale must be positive")
        if self.period is not None and (
            self.period.shape != self.scale.shape
            or self.period.is_floating_point()
            or not bool((self.period >= 1).all())
        ):
            raise ValueError("the prior's seasons must be (K,) integers ≥ 1, one per scale")

    def mean(self, cond: Conditioning) -> Tensor:
        """μ(c) (N, K, L): the conditioning values where given, their linear interpolation in
        time between them, their last season repeated beyond them (`extend_seasonally`), and
        0 (the feature's normalised mean) where a window gives none."""
        return interpolate_and_extend(cond.x, cond.mask > 0, self.period)

    def attach(self, cond: Conditioning) -> Conditioning:
        """`cond` with its fill set to μ(c) when the prior has seasons, so that a network's
        dense input (`cond_input`) is the prior's guess; unchanged without seasons, where μ is
        the linear interpolation the network computes itself."""
        return cond if self.period is None else replace(cond, fill=self.mean(cond))

    def scales(self, cond: Conditioning) -> Tensor:
        """(N, K, 1): s_k where window n gives feature k a value, else 1."""
        given = (cond.mask > 0).any(dim=-1, keepdim=True)  # (N, K, 1)
        return torch.where(given, self.scale.to(cond.x)[:, None], torch.ones_like(cond.x[..., :1]))

    def encode(self, x: Tensor, cond: Conditioning) -> Tensor:
        """u = (x − μ(c)) / s for x (N, K, L)."""
        return (x - self.mean(cond)) / self.scales(cond).to(x)

    def decode(self, u: Tensor, cond: Conditioning) -> Tensor:
        """x = μ(c) + s·u for u (N, K, L) or (N, S, K, L) (S samples of each window)."""
        mean, scale = self.mean(cond).to(u), self.scales(cond).to(u)
        if u.dim() == 4:
            mean, scale = mean[:, None], scale[:, None]
        return mean + scale * u

    def log_scale_per_value(self, target: Tensor, cond: Conditioning) -> Tensor:
        """Σ_k,l target·log s / Σ target per window (B,): the change of variables' term of
        −log p(x) − (−log p(u)) in nats per target value; target (B, K, L) 0/1."""
        log_s = torch.log(self.scales(cond).to(target)).expand_as(target)
        return (target * log_s).flatten(1).sum(1) / target.flatten(1).sum(1).clamp_min(1)

    def to(self, device: torch.device | str) -> ResidualPrior:
        period = None if self.period is None else self.period.to(device)
        return ResidualPrior(self.scale.to(device), period)


def _targets(observed: Tensor, cond_mask: Tensor) -> Tensor:
    """(N, K, L) 0/1: observed, not given, in a window that gives the feature some value."""
    has_given = (cond_mask > 0).any(dim=-1, keepdim=True)  # (N, K, 1)
    return observed * (1.0 - cond_mask) * has_given


def residual_scale(
    values: Tensor,
    observed: Tensor,
    cond_mask: Tensor,
    floor: float = 1e-2,
    period: Tensor | None = None,
) -> Tensor:
    """s (K,): the root mean square of x − μ(c) over the targets (observed, not given) of
    windows (N, K, L) that give the feature some value (elsewhere the prior keeps scale 1),
    floored at `floor` (a feature the interpolation fits exactly still gets a usable scale);
    1 where a feature has no such target at all. μ with the seasons `period` (K,) if given."""
    target = _targets(observed, cond_mask)
    residual = (values - interpolate_and_extend(values * cond_mask, cond_mask > 0, period)) * target
    count = target.sum(dim=(0, 2))  # (K,)
    rms = torch.sqrt((residual**2).sum(dim=(0, 2)) / count.clamp_min(1))
    return torch.where(count > 0, rms.clamp_min(floor), torch.ones_like(rms))


def seasonal_periods(values: Tensor, observed: Tensor, cond_mask: Tensor) -> Tensor:
    """(K,) long: per feature, the season P ∈ 1 … L − 1 whose repetition beyond the given
    values (`extend_seasonally`) leaves the smallest sum of squared residuals x − μ(c) over
    the targets of windows (N, K, L); the shortest on ties, so 1 (the last value held) unless
    a season does better. Targets between given values do not depend on P."""
    n_features, length = values.shape[1], values.shape[2]
    given = cond_mask > 0
    target = _targets(observed, cond_mask)
    fill = linear_fill(values * cond_mask, given)  # (N, K, L)
    best = torch.ones(n_features, dtype=torch.long, device=values.device)
    best_sse = torch.full((n_features,), float("inf"), device=values.device)
    for p in range(1, max(length, 2)):
        period = torch.full_like(best, p)
        sse = (((values - extend_seasonally(fill, given, period)) ** 2) * target).sum(dim=(0, 2))
        better = sse < best_sse
        best = torch.where(better, period, best)
        best_sse = torch.where(better, sse, best_sse)
    return best
