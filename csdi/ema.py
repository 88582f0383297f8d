"""Exponential moving average of a network's weights, with a warmed-up decay.

The averaged copy is what training saves and what sampling uses (CSDI and most diffusion work
sample from an EMA of the weights). A fixed decay of 0.999 keeps ≈ 0.999ⁿ of the first weights
after n updates, still 25 % after 1 400 steps, which spoils the average of any short run; the
decay is warmed up as d_n = min(decay, (1 + n)/(10 + n)) after n updates (as in common EMA
implementations), so it tracks the model early and reaches `decay` after ≈ 9/(1 − decay) steps.

Unlike `torch.optim.swa_utils.AveragedModel`, the update count lives on the host, so an update
never waits for the GPU (AveragedModel reads its device-side counter back at every update);
the state dict has AveragedModel's layout (`module.*`, `n_averaged`), so either reads the other's.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn


def warmed_up_decay(decay: float, n: int) -> float:
    """d_n = min(decay, (1 + n)/(10 + n)): the weight kept of the average at update n ≥ 1."""
    return min(decay, (1.0 + n) / (10.0 + n))


class ExponentialMovingAverage(nn.Module):
    """`module`: a copy of the network whose floating parameters and buffers are the EMA of the
    network's, updated by `update_parameters(network)`; the first update copies them."""

    def __init__(self, network: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the EMA decay must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(network)
        self.decay = decay
        self.n_averaged: Tensor
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long))
        self._updates = 0  # host copy of n_averaged: read at every update without a device sync

    def _pairs(self, network: nn.Module, floating: bool) -> tuple[list[Tensor], list[Tensor]]:
        """The averaged and the current tensors, parameters then buffers, floating or not."""
        mine = [*self.module.parameters(), *self.module.buffers()]
        theirs = [*network.parameters(), *network.buffers()]
        pairs = [p for p in zip(mine, theirs, strict=True) if p[0].is_floating_point() == floating]
        return [a for a, _ in pairs], [b.detach() for _, b in pairs]

    @torch.no_grad()
    def update_parameters(self, network: nn.Module) -> None:
        averaged, current = self._pairs(network, floating=True)
        if self._updates == 0:
            torch._foreach_copy_(averaged, current)
        else:
            d = warmed_up_decay(self.decay, self._updates)
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        for mine, theirs in zip(*self._pairs(network, floating=False), strict=True):
            mine.copy_(theirs)  # counters and the like: not averaged, kept current
        self._updates += 1
        self.n_averaged.fill_(self._updates)  # the counter's state-dict copy (no device read)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._updates = int(self.n_averaged)  # once, at load
