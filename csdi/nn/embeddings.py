"""Embeddings of the score network: sinusoids, diffusion time, and CSDI's side information.

Side information (Tashiro et al. 2021, CSDI §4): for every entry (k, l) of a window, the
sinusoidal embedding of the time stamp of step l (128), a learned embedding of feature k (16) and
the `cond` mask bit: 145 channels, projected per residual layer to 2C channels by a 1×1
convolution. That projection is linear, so it splits exactly into a time part (depends on l only),
a feature part (depends on k only) and a mask part:

    W · [temb(τ_l); femb_k; m_kl] + b = (W_τ temb(τ_l) + b) + W_f femb_k + w_m m_kl.

We compute the three parts on (B, L), (K,) and (B, K, L) instead of one (B, K, L, 145) product —
about 35× fewer multiply-adds for K = 35 — and they depend on `cond` only, so a sampler can
compute them once per window (see `ScoreNetwork.precompute`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def sinusoidal_embedding(positions: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer position embedding (Vaswani et al. 2017) of real-valued positions.

    out[..., 2i] = sin(p · ω_i), out[..., 2i+1] = cos(p · ω_i), ω_i = max_period^(−2i/dim):
    CSDI's `time_embedding` of the time stamps. positions (...,) → (..., dim).
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embedding dimension must be even, got {dim}")
    # at least single precision; integer positions in the default dtype
    dtype = positions.dtype if positions.is_floating_point() else torch.get_default_dtype()
    dtype = torch.promote_types(dtype, torch.float32)
    freqs = torch.exp(
        torch.arange(0, dim, 2, device=positions.device, dtype=dtype)
        * (-math.log(max_period) / dim)
    )  # (dim/2,)
    angles = positions.to(dtype).unsqueeze(-1) * freqs  # (..., dim/2)
    # interleave: (..., dim/2, 2) → (..., dim)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class DiffusionTimeEmbedding(nn.Module):
    """Continuous diffusion time t ∈ [0, 1] → (B, dim) features shared by all residual layers.

    sinusoid(t · time_scale) → Linear → SiLU → Linear → SiLU, as CSDI's `DiffusionEmbedding`
    but on a real-valued input: CSDI looks up integer steps n = 0..49 in a table whose
    frequencies *increase* from 1 to 10⁴, which aliases between integers; we use the decreasing
    Vaswani frequencies (1 … 10⁻⁴) so that the embedding is smooth in t and any sampler or step
    count can query the network. time_scale = 50 puts t on CSDI's step range (CSDI's step n sits
    at t = (n + 1)/50 under the `csdi_quad` schedule).
    """

    def __init__(self, dim: int = 128, time_scale: float = 50.0) -> None:
        super().__init__()
        self.dim = dim
        self.time_scale = time_scale
        self.projection1 = nn.Linear(dim, dim)
        self.projection2 = nn.Linear(dim, dim)

    def forward(self, t: Tensor) -> Tensor:
        """t (B,) → (B, dim)."""
        x = sinusoidal_embedding(t * self.time_scale, self.dim)
        x = F.silu(self.projection1(x.to(self.projection1.weight.dtype)))
        return F.silu(self.projection2(x))


@dataclass(frozen=True)
class SideProjection:
    """The side-information term W · side + b of every residual layer, kept in factored form.

    time:        (B, L, n_layers, D)   W_τ · temb(timestamps) + b
    feature:     (K, n_layers, D)      W_f · femb
    mask_weight: (n_layers, D)         w_m
    mask:        (B, K, L, 1)          the `cond` mask as a float
    """

    time: Tensor
    feature: Tensor
    mask_weight: Tensor
    mask: Tensor

    def layer(self, i: int) -> Tensor:
        """Side-information term of residual layer i, (B, K, L, D)."""
        time_feature = self.time[:, None, :, i] + self.feature[None, :, None, i]  # (B, K, L, D)
        return torch.addcmul(time_feature, self.mask, self.mask_weight[i])


class SideInformation(nn.Module):
    """CSDI's side information [temb(τ_l) (time_dim); femb_k (feature_dim); m_kl (1)] and its
    per-layer 1×1-conv projections to `out_dim` channels, stacked into one Linear.

    `projection.weight[i·out_dim:(i+1)·out_dim]` is layer i's conv weight with input channels in
    the order (time, feature, mask), as in CSDI.
    """

    def __init__(
        self,
        n_features: int,
        n_layers: int,
        out_dim: int,
        time_dim: int = 128,
        feature_dim: int = 16,
    ) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.out_dim = out_dim
        self.time_dim = time_dim
        self.feature_dim = feature_dim
        self.feature_embedding = nn.Embedding(n_features, feature_dim)
        self.projection = nn.Linear(time_dim + feature_dim + 1, n_layers * out_dim)
        nn.init.kaiming_normal_(self.projection.weight)  # CSDI's Conv1d_with_init

    @property
    def side_dim(self) -> int:
        return self.time_dim + self.feature_dim + 1

    def forward(self, timestamps: Tensor, mask: Tensor) -> SideProjection:
        """timestamps (B, L), mask (B, K, L) float → the factored projection of every layer."""
        n, d, td = self.n_layers, self.out_dim, self.time_dim
        w, b = self.projection.weight, self.projection.bias  # (n·d, side_dim), (n·d,)
        temb = sinusoidal_embedding(timestamps, td).to(w.dtype)  # (B, L, td)
        time = F.linear(temb, w[:, :td], b)  # (B, L, n·d)
        feature = self.feature_embedding.weight @ w[:, td:-1].T  # (K, n·d)
        return SideProjection(
            time=time.unflatten(-1, (n, d)),  # (B, L, n, d)
            feature=feature.unflatten(-1, (n, d)),  # (K, n, d)
            mask_weight=w[:, -1].view(n, d),
            mask=mask.unsqueeze(-1),  # (B, K, L, 1)
        )
