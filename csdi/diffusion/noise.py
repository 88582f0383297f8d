"""Where a sampler's Gaussian draws come from: one generator, or one stream per window.

`WindowNoise` gives every window its own generator, seeded from the run seed and the window's
index (`window_seed`), and draws the rows of each window (its S samples, sample-minor as in
`Conditioning.repeat`) from that window's stream alone. Samples then do not depend on how the
windows are cut into batches or chunks, or spread over processes: window i gets the same draws
whichever batch it is in.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import torch
from torch import Tensor


def window_seed(seed: int, index: int) -> int:
    """A 63-bit seed for window `index` of a run seeded `seed` (NumPy's SeedSequence mixing)."""
    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


class WindowNoise:
    """Normal draws for B windows × S rows each, window b's rows from window b's own stream."""

    def __init__(
        self,
        seed: int,
        first_window: int,
        n_windows: int,
        rows_per_window: int,
        device: torch.device,
    ) -> None:
        self.rows_per_window = rows_per_window
        self.device = device
        self.generators = [
            torch.Generator(device=device).manual_seed(window_seed(seed, first_window + b))
            for b in range(n_windows)
        ]

    def randn(self, like: Tensor) -> Tensor:
        """Standard normal shaped like `like` (B·S, …), block b from generator b."""
        rows = len(self.generators) * self.rows_per_window
        if like.shape[0] != rows:
            raise ValueError(f"expected {rows} rows (windows × samples), got {like.shape[0]}")
        shape = (self.rows_per_window, *like.shape[1:])
        parts = [
            torch.randn(shape, generator=g, dtype=like.dtype, device=self.device)
            for g in self.generators
        ]
        return torch.cat(parts).to(like.device)

    def integer(self) -> int:
        """One integer in [0, 2³¹ − 1) from the first window's stream (e.g. a solver's entropy)."""
        return int(
            torch.randint(0, 2**31 - 1, (), generator=self.generators[0], device=self.device)
        )


NoiseSource: TypeAlias = torch.Generator | WindowNoise


def randn_like(like: Tensor, source: NoiseSource) -> Tensor:
    """Standard normal shaped like `like`, drawn on the source's device, then moved."""
    if isinstance(source, WindowNoise):
        return source.randn(like)
    out = torch.randn(like.shape, generator=source, dtype=like.dtype, device=source.device)
    return out.to(like.device)


def random_integer(source: NoiseSource) -> int:
    """One integer in [0, 2³¹ − 1) from `source`."""
    if isinstance(source, WindowNoise):
        return source.integer()
    return int(torch.randint(0, 2**31 - 1, (), generator=source, device=source.device))
