"""Trainer pieces: the EMA warm-up and the learning-rate milestones."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from csdi.training import _lr_lambda, ema_with_warmup


def test_ema_warmup_forgets_the_initial_weights() -> None:
    """Weights jump from 0 to 1 after the first update; the EMA's remnant of 0 after N more
    updates is Π_{n=1..N} d_n with d_n = min(decay, (1 + n)/(10 + n)) — computed directly."""
    net = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(net.weight)
    ema = AveragedModel(net, multi_avg_fn=ema_with_warmup(0.999), use_buffers=True)
    ema.update_parameters(net)  # n = 0: copies the zeros
    with torch.no_grad():
        net.weight.fill_(1.0)
    n_updates = 300
    for _ in range(n_updates):
        ema.update_parameters(net)
    remnant = math.prod(min(0.999, (1 + n) / (10 + n)) for n in range(1, n_updates + 1))
    assert abs((1.0 - ema.module.weight.item()) - remnant) < 1e-6
    assert remnant < 0.01 < 0.999**n_updates  # a fixed decay would keep 74 % of the zeros


def test_lr_drops_tenfold_at_each_milestone() -> None:
    f = _lr_lambda(200, (0.75, 0.9))
    assert [f(e) for e in (0, 149, 150, 179, 180, 199)] == [1, 1, 0.1, 0.1, 0.1**2, 0.1**2]
