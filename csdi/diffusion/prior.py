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

With `diffusion.prior_scale = "distance"` the scale depends also on how far an entry lies from
the nearest given value of its feature: s_k(d) for d in the buckets 1, 2, 3–4, 5–8, …, 33+
(`distance_bucket`), fitted the same way per bucket, non-decreasing in d. Next to a given value
the interpolation is nearly exact and the residual small; in a long gap it is large. One scale
per feature leaves u tiny at the first and large in the second, so the network must be precise
at very different scales; a scale per distance puts u at unit scale everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.interpolation import gap_distance, linear_fill

#: Diffusion priors: "zero" is CSDI's N(0, I) on the normalised values, "interpolation" the
#: residual prior of this module.
PRIOR_MEANS = ("zero", "interpolation")
#: Residual scales: one per feature, or one per feature and distance bucket (`distance_bucket`).
PRIOR_SCALES = ("feature", "distance")
#: Distance buckets 1, 2, 3–4, 5–8, 9–16, 17–32, 33+ (bucket b holds 2^(b−1) < d ≤ 2^b).
N_BUCKETS = 7
#: Fewest training targets that estimate a bucket's scale; sparser buckets take the one below.
MIN_BUCKET_TARGETS = 20


def distance_bucket(distance: Tensor) -> Tensor:
    """The bucket ⌈log₂ d⌉ of each distance d ≥ 1 (d = 0, a given entry, goes to bucket 0),
    capped at N_BUCKETS − 1."""
    return torch.ceil(torch.log2(distance.clamp_min(1).double())).long().clamp(0, N_BUCKETS - 1)


@dataclass(frozen=True)
class ResidualPrior:
    """The affine frame x = μ(c) + s·u of the residual prior; scale (K,) in normalised units,
    or (K, N_BUCKETS): one per feature and distance bucket to the nearest given value.

    Where a window gives a feature no value at all, there is nothing to interpolate: μ = 0 and
    the scale is 1 there, CSDI's N(0, I) prior on that feature of that window (`scales`)."""

    scale: Tensor

    def __post_init__(self) -> None:
        finite = bool(torch.isfinite(self.scale).all())
        shape_ok = self.scale.dim() == 1 or (
            self.scale.dim() == 2 and self.scale.shape[1] == N_BUCKETS
        )
        if not shape_ok or len(self.scale) == 0 or not finite:
            raise ValueError(
                f"the residual scale must be (K,) or (K, {N_BUCKETS}) with K > 0, finite"
            )
        if not bool((self.scale > 0).all()):
            raise ValueError("the residual scale must be positive")

    def mean(self, cond: Conditioning) -> Tensor:
        """μ(c) (N, K, L): the conditioning values where given, their linear interpolation in
        time elsewhere (0, the feature's normalised mean, where a window gives none)."""
        return linear_fill(cond.x, cond.mask > 0)

    def scales(self, cond: Conditioning) -> Tensor:
        """(N, K, 1): s_k where window n gives feature k a value, else 1; with a scale per
        distance (N, K, L): s_k(bucket of the entry's distance to the nearest given value)."""
        given = cond.mask > 0
        any_given = given.any(dim=-1, keepdim=True)  # (N, K, 1)
        if self.scale.dim() == 1:
            s = self.scale.to(cond.x)[:, None]  # (K, 1)
        else:
            bucket = distance_bucket(gap_distance(given))  # (N, K, L)
            table = self.scale.to(cond.x).expand(len(cond.x), -1, -1)  # (N, K, B)
            s = table.gather(-1, bucket)
        return torch.where(any_given, s, torch.ones_like(cond.x[..., :1]))

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
    values: Tensor,
    observed: Tensor,
    cond_mask: Tensor,
    floor: float = 1e-2,
    by_distance: bool = False,
) -> Tensor:
    """s (K,): the root mean square of x − μ(c) over the targets (observed, not given) of
    windows (N, K, L) that give the feature some value (elsewhere the prior keeps scale 1),
    floored at `floor` (a feature the interpolation fits exactly still gets a usable scale);
    1 where a feature has no such target at all.

    `by_distance`: s (K, N_BUCKETS), the same per distance bucket. A bucket with fewer than
    MIN_BUCKET_TARGETS targets takes the scale of the bucket below (the feature's own scale
    for the first), and the scales are made non-decreasing in the distance (running maximum)."""
    given = cond_mask > 0
    has_given = given.any(dim=-1, keepdim=True)  # (N, K, 1)
    target = observed * (1.0 - cond_mask) * has_given
    residual = (values - linear_fill(values * cond_mask, given)) * target
    count = target.sum(dim=(0, 2))  # (K,)
    rms = torch.sqrt((residual**2).sum(dim=(0, 2)) / count.clamp_min(1))
    overall = torch.where(count > 0, rms.clamp_min(floor), torch.ones_like(rms))
    if not by_distance:
        return overall
    onehot = torch.nn.functional.one_hot(distance_bucket(gap_distance(given)), N_BUCKETS)
    weights = target[..., None] * onehot.to(target)  # (N, K, L, B)
    counts = weights.sum(dim=(0, 2))  # (K, B)
    sums = (residual[..., None] ** 2 * weights).sum(dim=(0, 2))
    table = torch.sqrt(sums / counts.clamp_min(1)).clamp_min(floor)
    scale = overall.clone()
    columns = []
    for b in range(N_BUCKETS):  # sparse buckets inherit the scale below
        scale = torch.where(counts[:, b] >= MIN_BUCKET_TARGETS, table[:, b], scale)
        columns.append(scale)
    out = torch.stack(columns, dim=1).cummax(dim=1).values  # non-decreasing in the distance
    return torch.where(count[:, None] > 0, out, torch.ones_like(out))
