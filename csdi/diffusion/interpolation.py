"""Linear interpolation of the given values along time: a dense conditioning input.

PriSTI (Liu et al. 2023) feeds the network the linear interpolation of the observed values
instead of zeros at the missing entries, so every entry starts from a sensible coarse guess and
the network learns the correction. Edges take the nearest given value (constant extrapolation);
a feature with no given value in a window stays 0 (its mean in normalised units).
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_fill(x: Tensor, given: Tensor) -> Tensor:
    """x (..., L) with `given` (..., L) bool → (..., L): x where given, else the linear
    interpolation in the step index between the nearest given steps on either side."""
    length = x.shape[-1]
    steps = torch.arange(length, device=x.device).expand_as(x)  # (..., L)
    before = torch.where(given, steps, -1).cummax(dim=-1).values  # last given step ≤ l, or −1
    after = torch.where(given, steps, length).flip(-1).cummin(dim=-1).values.flip(-1)  # ≥ l, or L
    has_before, has_after = before >= 0, after < length
    x_before = x.gather(-1, before.clamp(min=0))
    x_after = x.gather(-1, after.clamp(max=length - 1))
    span = (after - before).clamp(min=1).to(x.dtype)
    w = (steps - before).to(x.dtype) / span  # weight of the later value
    inside = x_before + w * (x_after - x_before)
    out = torch.where(has_before & has_after, inside, torch.where(has_before, x_before, x_after))
    out = torch.where(has_before | has_after, out, torch.zeros_like(x))
    return torch.where(given, x, out)


def extend_seasonally(fill: Tensor, given: Tensor, period: Tensor) -> Tensor:
    """fill, given (..., K, L), period (K,) integers ≥ 1 → (..., K, L): beyond the given steps
    the last season repeated instead of the nearest value (the seasonal naive forecast: with g
    the last given step, step g + h takes fill[g + h − P·⌈h/P⌉]; before the first given step f,
    step f − h takes fill[f − h + P·⌈h/P⌉]). Period 1 is `linear_fill`'s constant ends; where a
    season reaches past the window, or a series has no given step, `fill` is kept."""
    length = fill.shape[-1]
    steps = torch.arange(length, device=fill.device)
    p = period.to(device=fill.device, dtype=torch.long)[:, None]  # (K, 1)
    last = torch.where(given, steps, -1).amax(dim=-1, keepdim=True)  # (..., K, 1)
    first = torch.where(given, steps, length).amin(dim=-1, keepdim=True)
    ahead = steps - last  # > 0 after the last given step
    behind = first - steps  # > 0 before the first given step
    source = torch.where(
        ahead > 0,
        steps - p * ((ahead + p - 1) // p),
        torch.where(behind > 0, steps + p * ((behind + p - 1) // p), steps),
    )
    inside = (source >= 0) & (source < length) & (last >= 0)
    source = torch.where(inside, source, steps).expand_as(fill)
    return fill.gather(-1, source)
