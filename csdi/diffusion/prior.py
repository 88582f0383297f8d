"""A data-dependent prior: diffuse the residual from the interpolation, not the value.

PriorGrad (Lee et al. 2022, ICLR) replaces the N(0, I) prior of a conditional diffusion model by
N(μ(c), Σ(c)) computed from the condition, and shows that the network then has less to learn
and trains faster. Here μ is the linear interpolation in time of the conditioning values
(`linear_fill`, constant beyond the last given value) and Σ = diag(s_k²) holds one scale per
feature, the root mean square of x − μ over training targets (`residual_scale`); where a window
gives a feature no value, μ = 0 and the scale is 1 (CSDI's prior). The diffusion runs on

    u = (x − μ(c)) / s        and returns        x = μ(c) + s · u,

so every sampler, objective and bound applies unchanged to u. On smooth series, where the
interpolation is already close, u is the part still unknown at unit scale: an error ε in the
network's estimate of u costs s·ε in the data. The change of variables adds log s_k per target
value to the negative log-likelihood (`log_scale_per_value`).

The interpolation's error is not one size along a window: next to a given value it is a small
part of the feature's, in the middle of a long gap or beyond the last given value it is most of
it. The gap-aware scale (`gap_residual_scale`) is a table s_k(side, d), the root mean square
of x − μ over training targets at distance d from the given values (`gap_distance`), inside a
gap (given values on both sides) or outside (on one side only; forecasting's horizon). With it
u is at unit scale at every position, as EDM's preconditioning (Karras et al. 2022) puts the
network's target at unit variance, so a target one step from a given value is learned to the
same relative precision as one in a long gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.interpolation import linear_fill, nearest_given

#: Diffusion priors: "zero" is CSDI's N(0, I) on the normalised values, "interpolation" the
#: residual prior of this module.
PRIOR_MEANS = ("zero", "interpolation")
#: The residual prior's scale: one per feature, or per feature, side and distance from the given
#: values ("gap", `gap_distance`).
PRIOR_SCALES = ("feature", "gap")
#: Distances of the gap-aware table: 1 … GAP_DISTANCES steps, farther ones share the last entry.
GAP_DISTANCES = 32


@dataclass(frozen=True)
class ResidualPrior:
    """The affine frame x = μ(c) + s·u of the residual prior, in normalised units; `scale` is
    (K,), one per feature, or (K, 2, D), per feature, side (0: inside a gap, 1: beyond the
    first or last given value) and distance 1 … D from the given values (`gap_distance`).

    Where a window gives a feature no value at all, there is nothing to interpolate: μ = 0 and
    the scale is 1 there, CSDI's N(0, I) prior on that feature of that window (`scales`)."""

    scale: Tensor

    def __post_init__(self) -> None:
        finite = bool(torch.isfinite(self.scale).all())
        shape_ok = self.scale.dim() == 1 or (self.scale.dim() == 3 and self.scale.shape[1] == 2)
        if not shape_ok or self.scale.numel() == 0 or not finite:
            raise ValueError("the residual scale must be (K,) or (K, 2, D) with K, D > 0, finite")
        if not bool((self.scale > 0).all()):
            raise ValueError("the residual scale must be positive")

    def mean(self, cond: Conditioning) -> Tensor:
        """μ(c) (N, K, L): the conditioning values where given, their linear interpolation in
        time elsewhere (0, the feature's normalised mean, where a window gives none)."""
        return linear_fill(cond.x, cond.mask > 0)

    def scales(self, cond: Conditioning) -> Tensor:
        """s where window n gives feature k a value, else 1: (N, K, 1) for a scale per feature,
        (N, K, L) for the gap-aware table (s_k(side, d) at each step)."""
        given = (cond.mask > 0).any(dim=-1, keepdim=True)  # (N, K, 1)
        scale = self.scale.to(cond.x)
        if scale.dim() == 1:
            return torch.where(given, scale[:, None], torch.ones_like(cond.x[..., :1]))
        k, _, depth = scale.shape
        side, distance = gap_distance(cond.mask > 0)  # (N, K, L) each
        feature = torch.arange(k, device=scale.device)[:, None]  # (K, 1)
        at = (feature * 2 + side) * depth + distance.clamp(1, depth) - 1  # flat index (N, K, L)
        return torch.where(given, scale.reshape(-1)[at], torch.ones_like(cond.x))

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
        return ResidualPrior(self.scale.to(device))


def residual_scale(
    values: Tensor, observed: Tensor, cond_mask: Tensor, floor: float = 1e-2
) -> Tensor:
    """s (K,): the root mean square of x − μ(c) over the targets (observed, not given) of
    windows (N, K, L) that give the feature some value (elsewhere the prior keeps scale 1),
    floored at `floor` (a feature the interpolation fits exactly still gets a usable scale);
    1 where a feature has no such target at all."""
    has_given = (cond_mask > 0).any(dim=-1, keepdim=True)  # (N, K, 1)
    target = observed * (1.0 - cond_mask) * has_given
    cond = Conditioning(x=values * cond_mask, mask=cond_mask)
    residual = (values - linear_fill(cond.x, cond_mask > 0)) * target
    count = target.sum(dim=(0, 2))  # (K,)
    rms = torch.sqrt((residual**2).sum(dim=(0, 2)) / count.clamp_min(1))
    return torch.where(count > 0, rms.clamp_min(floor), torch.ones_like(rms))


def gap_distance(given: Tensor) -> tuple[Tensor, Tensor]:
    """For `given` (..., L) bool: side (..., L) long, 0 where given values lie on both sides
    of step l (or at l), 1 where on one side only; and the distance (..., L) long: inside a gap
    ⌈√(a·b)⌉, a and b steps to the given values before and after, beyond the data the steps to
    the nearest given value (0 at a given step; L where the row gives nothing).

    Linear interpolation of a smooth series errs by ½ f''·a·b inside a gap, so the geometric
    mean of a and b tells a lone missing step (1) from a step at the edge of a long gap (√g)."""
    length = given.shape[-1]
    before, after = nearest_given(given)
    steps = torch.arange(length, device=given.device)
    has_before, has_after = before >= 0, after < length
    inside = has_before & has_after
    to_before = torch.where(has_before, steps - before, length)
    to_after = torch.where(has_after, after - steps, length)
    between = torch.sqrt((to_before * to_after).double()).ceil().long()
    distance = torch.where(inside, between, torch.minimum(to_before, to_after))
    return (~inside).long(), distance


def gap_residual_scale(
    values: Tensor,
    observed: Tensor,
    cond_mask: Tensor,
    depth: int = GAP_DISTANCES,
    floor: float = 1e-3,
    min_count: int = 30,
) -> Tensor:
    """s (K, 2, depth): the root mean square of x − μ(c) over the targets of windows (N, K, L)
    at each side and distance d (distances ≥ depth pooled in the last entry).

    An entry with fewer than `min_count` targets takes the nearest shorter distance's value on
    its side (the feature's `residual_scale` where there is none); along d the table is made
    non-decreasing (farther from the data, the interpolation is not expected to get better) and
    floored at `floor`, 1e-3 of a feature's training standard deviation."""
    k = values.shape[1]
    has_given = (cond_mask > 0).any(dim=-1, keepdim=True)  # (N, K, 1)
    target = (observed * (1.0 - cond_mask) * has_given) > 0  # (N, K, L)
    residual = values - linear_fill(values * cond_mask, cond_mask > 0)
    side, distance = gap_distance(cond_mask > 0)
    feature = torch.arange(k, device=values.device)[:, None].expand_as(side[0])  # (K, L)
    cell = ((feature * 2 + side) * depth + distance.clamp(1, depth) - 1)[target]  # (T,)
    total = torch.zeros(k * 2 * depth, dtype=torch.float64, device=values.device)
    squares = total.index_add(0, cell, residual[target].double() ** 2)
    count = total.index_add(0, cell, torch.ones_like(cell, dtype=torch.float64))
    squares, count = squares.view(k, 2, depth), count.view(k, 2, depth)
    pooled = residual_scale(values, observed, cond_mask, floor=floor).double()  # (K,)
    table = torch.empty(k, 2, depth, dtype=torch.float64, device=values.device)
    running = pooled[:, None].expand(k, 2).clone()  # (K, 2): the last well-counted value
    for d in range(depth):
        enough = count[:, :, d] >= min_count
        here = torch.sqrt(squares[:, :, d] / count[:, :, d].clamp_min(1))
        running = torch.where(enough, here, running)
        table[:, :, d] = running
    table = table.cummax(dim=-1).values.clamp_min(floor)
    return table.to(values.dtype)
