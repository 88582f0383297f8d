"""Numeric precision of the score network's evaluations.

"fp32": plain float32. "bf16": `torch.autocast` to bfloat16 around the network call only —
matrix products and attention run in bf16 (AMX / AVX-512-bf16 on recent x86 CPUs, tensor cores
on GPUs), layer norms and softmax statistics stay fp32 by autocast's own rules, and the result
is returned as fp32, so every sampler's arithmetic (the updates in α, σ, γ) stays fp32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Final

import torch

PRECISIONS: Final = ("fp32", "bf16")


def network_precision(precision: str, device: torch.device) -> AbstractContextManager[object]:
    """The context to evaluate the network in at `precision` on `device`."""
    if precision == "fp32":
        return nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
