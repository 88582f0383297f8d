"""Numeric precision of the score network's evaluations.

"fp32": plain float32. "auto": bf16 where the hardware computes it natively (a GPU with bf16,
a CPU with AMX or AVX-512-bf16), else fp32. "bf16": `torch.autocast` to bfloat16 around the
network call only —
matrix products and attention run in bf16 (AMX / AVX-512-bf16 on recent x86 CPUs, tensor cores
on GPUs), layer norms and softmax statistics stay fp32 by autocast's own rules, and the result
is returned as fp32, so every sampler's arithmetic (the updates in α, σ, γ) stays fp32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Final

import torch

PRECISIONS: Final = ("fp32", "bf16", "auto")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 matrix products natively (else autocast only emulates)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:  # torch's own CPU feature probes (AMX tiles, AVX-512-bf16)
            return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
        except AttributeError:
            return False
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` → bf16 where native, else fp32; bf16 where it is not native is refused
    (autocast would emulate it, slower than fp32); other names as given (checked)."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"unresolved precision {precision!r}; one of ['fp32', 'bf16'] from {list(PRECISIONS)}"
        )
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device):
        raise ValueError(
            f"precision bf16: this {device.type.upper()} has no native bf16 arithmetic "
            "(it would be emulated, slower than fp32); use fp32 or auto"
        )
    return precision


class AtPrecision(torch.nn.Module):
    """A noise predictor evaluated inside `network_precision`, its output returned as fp32 (so
    the loss or sampler arithmetic around it stays fp32). Gradients flow as through autocast."""

    def __init__(self, model: torch.nn.Module, precision: str, device: torch.device) -> None:
        super().__init__()
        self.model = model
        self.precision = resolve_precision(precision, device)
        self.device = device

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        with network_precision(self.precision, self.device):
            out = self.model(*args, **kwargs)
        return out.float()


def network_precision(precision: str, device: torch.device) -> AbstractContextManager[object]:
    """The context to evaluate the network in at a resolved `precision` ("fp32" or "bf16", from
    `resolve_precision`, which callers run once rather than at every network call)."""
    if precision == "fp32":
        return nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
