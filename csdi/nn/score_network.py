"""CSDI's conditional score network (Tashiro et al. 2021, §4 and Appendix E) on continuous time.

ε̂_θ(z_t, t, cond) → (B, K, L):
    input [cond ⊙ x, (1 − cond) ⊙ z_t] → 1×1 conv to C, ReLU;
    n_layers residual layers, each: + Linear(diffusion-time embedding), transformer across time
    (per feature), transformer across features (per time step), 1×1 conv to 2C + side
    information projected to 2C, sigmoid(gate) · tanh(filter), 1×1 conv to 2C split into
    residual ((h + residual)/√2) and skip;
    Σ skip / √n_layers → 1×1 conv, ReLU → 1×1 conv to 1 channel, zero-initialised (weight and
    bias, so the network outputs exactly 0 before training).

The state is kept channel-last, (B, K, L, C), so 1×1 convolutions are `nn.Linear`, the time
transformer reads it without a copy and the feature transformer needs one transpose.
Deviations from the reference, each deliberate: the diffusion time is continuous (see
`DiffusionTimeEmbedding`); the side-information projection is factored (see `SideInformation`;
the same function); values are selected with `torch.where`, not multiplied by the mask, so NaN
in unused entries of x or z_t cannot leak into the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, cast

import torch
import torch.fx.experimental._config as fx_config
from torch import Tensor, nn
from torch.nn import functional as F

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.interpolation import linear_fill
from csdi.nn.embeddings import DiffusionTimeEmbedding, SideInformation, SideProjection
from csdi.nn.transformer import (
    Attention,
    FeatureGroups,
    TransformerLayer,
    attend_in_groups,
    random_feature_groups,
)


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the score network; defaults are CSDI's (≈ 0.41 M parameters for K = 35).

    feature_subset: in training mode, attend across random groups of at most this many features
        (a fresh partition per forward call); evaluation always attends across all features.
    attention: "linear" makes the feature transformer linear attention (K in the hundreds);
        the time transformer stays full attention.
    time_scale: the diffusion time t ∈ [0, 1] is embedded as sinusoid(t · time_scale).
    cond_input: "masked" (CSDI: the given values, 0 elsewhere), "interpolated" (the given
        values linearly interpolated along time, PriSTI's conditioning; see `linear_fill`; or
        `Conditioning.fill` where the caller sets it) or "both" (the two as separate input
        channels).
    temporal_kernel: when > 0 (odd), each residual layer first adds a depthwise convolution
        along time of this width (per feature and channel, zero-initialised so training starts
        from CSDI's function): a local, translation-invariant path next to the time
        transformer, which sees positions only through the side information.
    time_bias: when > 0, the time transformer adds a learned bias per head and signed distance
        between steps (clamped at this many steps) to its attention scores, zero-initialised:
        the attention then knows how far apart two steps are from the first layer on.
    feature_bias: the feature transformer adds a learned bias per head and (query, key) pair of
        features to its attention scores, zero-initialised: which series inform which, from
        the first layer on, where CSDI's learns it from the feature embeddings alone. Needs
        attention over all features (no `feature_subset`).
    cond_centre: the conditioning channels are centred per window and feature on the mean of
        the feature's given values (0 where it has none), as RevIN centres a model's inputs
        (Kim et al. 2022): the network sees each series' shape, not its level, so a later
        period that drifts to levels the training rows rarely reached (a random walk, a
        trend) is read like the training windows. Meant for the residual prior, whose noisy
        state is itself level-free; with CSDI's zero prior the network would lose the level.
    """

    n_features: int
    channels: int = 64
    n_layers: int = 4
    n_heads: int = 8
    diffusion_embedding_dim: int = 128
    time_embedding_dim: int = 128
    feature_embedding_dim: int = 16
    ff_dim: int = 64
    dropout: float = 0.1
    feature_subset: int | None = None
    attention: Attention = "full"
    time_scale: float = 50.0
    cond_input: Literal["masked", "interpolated", "both"] = "masked"
    temporal_kernel: int = 0
    time_bias: int = 0
    feature_bias: bool = False
    cond_centre: bool = False

    def __post_init__(self) -> None:
        if self.n_features < 1:
            raise ValueError(f"n_features must be at least 1, got {self.n_features}")
        if self.channels % self.n_heads:
            raise ValueError(
                f"channels={self.channels} must be divisible by n_heads={self.n_heads}"
            )
        if self.feature_subset is not None and self.feature_subset < 1:
            raise ValueError(f"feature_subset must be at least 1, got {self.feature_subset}")
        if self.attention not in ("full", "linear"):
            raise ValueError(f"attention must be 'full' or 'linear', got {self.attention!r}")
        if self.cond_input not in ("masked", "interpolated", "both"):
            raise ValueError(
                f"cond_input must be 'masked', 'interpolated' or 'both', got {self.cond_input!r}"
            )
        if self.feature_bias and (self.feature_subset is not None or self.attention != "full"):
            raise ValueError(
                "feature_bias needs full attention over all features; with feature_subset or "
                "linear attention set feature_bias to false (--set model.feature_bias=false)"
            )
        if self.time_bias < 0:
            raise ValueError(
                f"time_bias must be 0 (none) or a positive distance, got {self.time_bias}"
            )
        if self.temporal_kernel < 0 or (self.temporal_kernel and self.temporal_kernel % 2 == 0):
            raise ValueError(
                f"temporal_kernel must be 0 or a positive odd width, got {self.temporal_kernel}"
            )


@dataclass(frozen=True)
class ConditionCache:
    """What the network derives from `cond` alone, reusable across sampling steps.

    given:       (B, K, L) bool, the `cond` mask
    cond_values: (B, K, L, I) the conditioning input channels (see `cond_input`): x where
                 given, else 0, and/or its interpolation
    side:        every layer's side-information term, factored
    Valid only while the network's parameters are unchanged.
    """

    given: Tensor
    cond_values: Tensor
    side: SideProjection


def _conv1x1(n_in: int, n_out: int) -> nn.Linear:
    """A 1×1 convolution on channel-last tensors, with CSDI's Kaiming-normal initialisation."""
    layer = nn.Linear(n_in, n_out)
    nn.init.kaiming_normal_(layer.weight)
    return layer


class ResidualLayer(nn.Module):
    """One residual layer of CSDI (DiffWave-style gated residual with two transformers)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        c = config.channels
        self.diffusion_projection = nn.Linear(config.diffusion_embedding_dim, c)
        self.temporal_conv: nn.Conv2d | None = None
        if config.temporal_kernel:
            w = config.temporal_kernel
            # applied to (B·K, C, L, 1) images: a (w × 1) depthwise kernel along time, see
            # `along_time`
            self.temporal_conv = nn.Conv2d(c, c, (w, 1), padding=(w // 2, 0), groups=c)
            nn.init.zeros_(self.temporal_conv.weight)
            nn.init.zeros_(cast(Tensor, self.temporal_conv.bias))
        self.time_layer = TransformerLayer(
            c, config.n_heads, config.ff_dim, config.dropout, max_distance=config.time_bias
        )
        self.feature_layer = TransformerLayer(
            c,
            config.n_heads,
            config.ff_dim,
            config.dropout,
            config.attention,
            pair_positions=config.n_features if config.feature_bias else 0,
        )
        self.mid_projection = _conv1x1(c, 2 * c)
        self.output_projection = _conv1x1(c, 2 * c)

    def along_time(self, y: Tensor) -> Tensor:
        """y (B, K, L, C) + the depthwise convolution of each series along L (`temporal_kernel`;
        y unchanged without it)."""
        if self.temporal_conv is None:
            return y
        b, k, l, c = y.shape
        # the series as (B·K, C, L, 1) images in channels-last memory (a view of y): oneDNN's
        # depthwise 2-d kernel is about 4× faster here than Conv1d on transposed copies
        images = y.reshape(b * k, l, 1, c).permute(0, 3, 1, 2)
        out = self.temporal_conv(images)  # (B·K, C, L, 1): "same" length
        return y + out.permute(0, 2, 3, 1).reshape(b, k, l, c)

    def forward(
        self, h: Tensor, diffusion_emb: Tensor, side: Tensor, groups: FeatureGroups | None
    ) -> tuple[Tensor, Tensor]:
        """h (B, K, L, C), diffusion_emb (B, E), side (B, K, L, 2C) → h', skip (B, K, L, C)."""
        _, k, l, _ = h.shape
        y = self.along_time(h + self.diffusion_projection(diffusion_emb)[:, None, None, :])
        if l > 1:
            y = self.time_layer(y)  # attends over L, batch (B, K)
        if k > 1:
            y_t = y.transpose(1, 2)  # (B, L, K, C)
            if groups is None:
                y_t = self.feature_layer(y_t)
            else:
                y_t = attend_in_groups(self.feature_layer, y_t, groups)
            y = y_t.transpose(1, 2)  # (B, K, L, C)
        y = self.mid_projection(y) + side  # (B, K, L, 2C)
        gate, filt = y.chunk(2, dim=-1)
        y = self.output_projection(gated_activation(gate, filt))  # (B, K, L, 2C)
        residual, skip = y.chunk(2, dim=-1)
        return (h + residual) / math.sqrt(2.0), skip


def gated_activation(gate: Tensor, filt: Tensor) -> Tensor:
    """WaveNet's gate σ(g)·tanh(f) (van den Oord et al. 2016), as CSDI's residual layers use it,
    written σ(g)·(2σ(2f) − 1) = 2·σ(g)·σ(2f) − σ(g) with one fused addcmul: the same function,
    but PyTorch's CPU tanh kernel takes 9× the time of its sigmoid on fp32 activations, so a
    network call takes 5–7 % less time (reports/performance/sampler_cpu.md)."""
    g = torch.sigmoid(gate)
    return torch.addcmul(-g, g, torch.sigmoid(2.0 * filt), value=2.0)


class ScoreNetwork(nn.Module):
    """ε̂_θ(z_t, t, cond) of CSDI; implements `NoisePredictor`. See the module docstring."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.diffusion_embedding = DiffusionTimeEmbedding(
            config.diffusion_embedding_dim, config.time_scale
        )
        self.side_information = SideInformation(
            config.n_features,
            config.n_layers,
            2 * c,
            config.time_embedding_dim,
            config.feature_embedding_dim,
        )
        n_inputs = 3 if config.cond_input == "both" else 2
        self.input_projection = _conv1x1(n_inputs, c)
        self.layers = nn.ModuleList(ResidualLayer(config) for _ in range(config.n_layers))
        self.output_hidden = _conv1x1(c, c)
        self.output_projection = nn.Linear(c, 1)
        nn.init.zeros_(self.output_projection.weight)
        nn.init.zeros_(self.output_projection.bias)

    def precompute(self, cond: Conditioning) -> ConditionCache:
        """The part of the forward pass that depends on `cond` only (not on z_t or t)."""
        b, k, l = cond.x.shape
        if k != self.config.n_features:
            raise ValueError(
                f"cond has {k} features but the network was built for {self.config.n_features}"
            )
        if cond.mask.shape != cond.x.shape:
            raise ValueError(f"cond.mask shape {tuple(cond.mask.shape)} != x shape {(b, k, l)}")
        if cond.timestamps is None:
            timestamps = torch.arange(l, device=cond.x.device, dtype=cond.x.dtype).expand(b, l)
        elif cond.timestamps.shape != (b, l):
            raise ValueError(f"cond.timestamps shape {tuple(cond.timestamps.shape)} != {(b, l)}")
        else:
            timestamps = cond.timestamps
        given = cond.mask.bool()
        masked = torch.where(given, cond.x, 0.0)
        level = torch.zeros_like(masked[..., :1])  # (B, K, 1)
        if self.config.cond_centre:
            n_given = given.sum(dim=-1, keepdim=True).clamp_min(1)
            level = masked.sum(dim=-1, keepdim=True) / n_given  # 0 where none is given
            masked = torch.where(given, masked - level, 0.0)
        channels = [] if self.config.cond_input == "interpolated" else [masked]
        if self.config.cond_input != "masked":
            dense = linear_fill(masked, given) if cond.fill is None else cond.fill - level
            channels.append(dense)
        cond_values = torch.stack(channels, dim=-1)  # (B, K, L, I)
        side = self.side_information(timestamps, given.to(cond_values.dtype))
        return ConditionCache(given=given, cond_values=cond_values, side=side)

    def forward(
        self,
        z_t: Tensor,
        t: Tensor,
        cond: Conditioning,
        cache: ConditionCache | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """z_t (B, K, L), t (B,) or scalar in [0, 1] → ε̂ (B, K, L).

        cache: `precompute(cond)`, to skip recomputing it; must belong to this `cond`.
        generator: draws the feature groups of `feature_subset` in training mode (None: torch's
            global RNG); unused otherwise.
        """
        if z_t.shape != cond.x.shape:
            raise ValueError(f"z_t shape {tuple(z_t.shape)} != cond.x shape {tuple(cond.x.shape)}")
        b, k, _ = z_t.shape
        if t.dim() == 0:
            t = t.expand(b)
        elif t.shape != (b,):
            raise ValueError(f"t must have shape ({b},) or be a scalar, got {tuple(t.shape)}")
        if cache is None:
            cache = self.precompute(cond)
        noisy = torch.where(cache.given, 0.0, z_t)
        h = torch.cat([cache.cond_values, noisy[..., None]], dim=-1)  # (B, K, L, I + 1)
        h = F.relu(self.input_projection(h))  # (B, K, L, C)
        diffusion_emb = self.diffusion_embedding(t)  # (B, E)
        groups = None
        if self.training and self.config.feature_subset is not None:
            groups = random_feature_groups(k, self.config.feature_subset, generator, z_t.device)
        skip_sum = torch.zeros_like(h)
        for i, layer in enumerate(self.layers):
            h, skip = layer(h, diffusion_emb, cache.side.layer(i), groups)
            skip_sum = skip_sum + skip
        y = F.relu(self.output_hidden(skip_sum / math.sqrt(len(self.layers))))  # (B, K, L, C)
        return self.output_projection(y).squeeze(-1)  # (B, K, L)

    def cached(self, max_entries: int = 16, *, compiled: bool = False) -> CachedPredictor:
        """A `NoisePredictor` that reuses `precompute(cond)` for repeated `cond` objects;
        `compiled`: its forward through `torch.compile`."""
        return CachedPredictor(self, max_entries, compiled=compiled)


class CachedPredictor:
    """ε̂_θ(z_t, t, cond) that computes `network.precompute(cond)` once per `cond` object.

    Samplers call the model many times with the same `Conditioning` object; the cache is keyed
    by object identity (holding a reference, so an id is never reused while cached) and keeps
    the `max_entries` most recently added. For inference: the network's parameters must not
    change while the predictor is in use.
    """

    def __init__(
        self, network: ScoreNetwork, max_entries: int = 16, *, compiled: bool = False
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.network = network
        # dynamic: one compilation serves every batch size (a sampler's last, smaller batch
        # would otherwise compile a second time)
        compiled_net = torch.compile(network, dynamic=True) if compiled else network
        self.forward: nn.Module = cast(nn.Module, compiled_net)
        self.compiled = compiled
        self.max_entries = max_entries
        self._entries: dict[int, tuple[Conditioning, ConditionCache]] = {}

    def __call__(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        entry = self._entries.get(id(cond))
        if entry is None or entry[0] is not cond:
            if len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # oldest first
            entry = (cond, self.network.precompute(cond))
            self._entries[id(cond)] = entry
        if not self.compiled:
            return self.forward(z_t, t, cond, cache=entry[1])
        # no duck sizing: dimensions that happen to be equal in the first batch (4 windows,
        # 4 layers) would be assumed equal, and the next batch would compile again
        with fx_config.patch(use_duck_shape=False):  # type: ignore[attr-defined]  # set at import
            return self.forward(z_t, t, cond, cache=entry[1])
