"""What a noise-prediction network is given besides the noisy state, and the callable it forms.

Axis convention inside the model: windows are (B, K, L) = (batch, features, time steps).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import torch
from torch import Tensor


@dataclass(frozen=True)
class Conditioning:
    """Clean conditioning values and side information for a batch of windows.

    x:          (B, K, L) values; only entries where `mask` is 1 are read.
    mask:       (B, K, L) 1 where the value is given to the model clean (`cond`), else 0.
    timestamps: (B, L) time stamps of the steps (None: 0..L−1).
    fill:       (B, K, L) a guess at every entry, the given values where given, for a network
                that takes a dense input (`cond_input`); None: their linear interpolation.
                The residual prior with seasons sets it to its mean (`ResidualPrior.attach`).
    """

    x: Tensor
    mask: Tensor
    timestamps: Tensor | None = None
    fill: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    def repeat(self, n_samples: int) -> Conditioning:
        """Each window repeated `n_samples` times consecutively: batch B → B·S (sample-minor)."""

        def rep(a: Tensor | None) -> Tensor | None:
            return None if a is None else a.repeat_interleave(n_samples, dim=0)

        return Conditioning(
            x=rep(self.x),  # type: ignore[arg-type]
            mask=rep(self.mask),  # type: ignore[arg-type]
            timestamps=rep(self.timestamps),
            fill=rep(self.fill),
        )

    def slice(self, start: int, stop: int) -> Conditioning:
        """Rows start:stop of the batch."""

        def part(a: Tensor | None) -> Tensor | None:
            return None if a is None else a[start:stop]

        return Conditioning(
            x=self.x[start:stop],
            mask=self.mask[start:stop],
            timestamps=part(self.timestamps),
            fill=part(self.fill),
        )

    def to(self, device: torch.device | str) -> Conditioning:
        def move(a: Tensor | None) -> Tensor | None:
            return None if a is None else a.to(device)

        return replace(
            self,
            x=self.x.to(device),
            mask=self.mask.to(device),
            timestamps=move(self.timestamps),
            fill=move(self.fill),
        )


class NoisePredictor(Protocol):
    """ε̂_θ(z_t, t, cond): z_t (N, K, L), t (N,) in [0, 1], cond with batch N → ε̂ (N, K, L).

    Only the entries where cond.mask == 0 of z_t and of the output are meaningful.
    """

    def __call__(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor: ...
