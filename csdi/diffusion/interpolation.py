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
