"""CSDI's network as the reference code writes it, for equivalence tests and speed baselines.

A plain eager restatement of `diff_CSDI` (Tashiro et al. 2021, reference implementation):
channels-first (B, C, K·L) state, `nn.Conv1d` 1×1 convolutions, `nn.TransformerEncoderLayer`
on sequence-first tensors with a permute before and after each, and the full (B, 145, K, L) side
information rebuilt and projected on every call. It shares no code with `ScoreNetwork` apart
from `NetworkConfig`; `reference_from(network)` copies a `ScoreNetwork`'s weights into it, so the
two must compute the same function. Only the diffusion-time input differs from the original
(continuous t, as in `DiffusionTimeEmbedding`), because that is the function we claim to compute.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from csdi.diffusion.conditioning import Conditioning
from csdi.nn.score_network import NetworkConfig, ScoreNetwork


def _position_embedding(pos: Tensor, d_model: int) -> Tensor:
    """CSDI's `time_embedding`: pos (...,) → (..., d_model), sin on even and cos on odd slots."""
    dtype = pos.dtype if pos.is_floating_point() else torch.get_default_dtype()
    dtype = torch.promote_types(dtype, torch.float32)
    pe = torch.zeros(*pos.shape, d_model, device=pos.device, dtype=dtype)
    position = pos.to(dtype).unsqueeze(-1)
    div_term = 1 / torch.pow(
        10000.0, torch.arange(0, d_model, 2, device=pos.device, dtype=dtype) / d_model
    )
    pe[..., 0::2] = torch.sin(position * div_term)
    pe[..., 1::2] = torch.cos(position * div_term)
    return pe


def _encoder_layer(config: NetworkConfig) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(
        d_model=config.channels,
        nhead=config.n_heads,
        dim_feedforward=config.ff_dim,
        dropout=config.dropout,
        activation="gelu",
    )


class _ReferenceResidualBlock(nn.Module):
    def __init__(self, config: NetworkConfig, side_dim: int) -> None:
        super().__init__()
        c = config.channels
        self.diffusion_projection = nn.Linear(config.diffusion_embedding_dim, c)
        self.cond_projection = nn.Conv1d(side_dim, 2 * c, 1)
        self.mid_projection = nn.Conv1d(c, 2 * c, 1)
        self.output_projection = nn.Conv1d(c, 2 * c, 1)
        self.time_layer = _encoder_layer(config)
        self.feature_layer = _encoder_layer(config)

    def forward_time(self, y: Tensor, base_shape: torch.Size) -> Tensor:
        b, c, k, l = base_shape
        if l == 1:
            return y
        y = y.reshape(b, c, k, l).permute(0, 2, 1, 3).reshape(b * k, c, l)
        y = self.time_layer(y.permute(2, 0, 1)).permute(1, 2, 0)
        return y.reshape(b, k, c, l).permute(0, 2, 1, 3).reshape(b, c, k * l)

    def forward_feature(self, y: Tensor, base_shape: torch.Size) -> Tensor:
        b, c, k, l = base_shape
        if k == 1:
            return y
        y = y.reshape(b, c, k, l).permute(0, 3, 1, 2).reshape(b * l, c, k)
        y = self.feature_layer(y.permute(2, 0, 1)).permute(1, 2, 0)
        return y.reshape(b, l, c, k).permute(0, 2, 3, 1).reshape(b, c, k * l)

    def forward(self, x: Tensor, cond_info: Tensor, diffusion_emb: Tensor) -> tuple[Tensor, Tensor]:
        b, c, k, l = x.shape
        base_shape = x.shape
        x = x.reshape(b, c, k * l)
        y = x + self.diffusion_projection(diffusion_emb).unsqueeze(-1)
        y = self.forward_time(y, base_shape)
        y = self.forward_feature(y, base_shape)
        y = self.mid_projection(y)
        y = y + self.cond_projection(cond_info.reshape(b, cond_info.shape[1], k * l))
        gate, filt = torch.chunk(y, 2, dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = torch.chunk(y, 2, dim=1)
        x = x.reshape(base_shape)
        return (x + residual.reshape(base_shape)) / math.sqrt(2.0), skip.reshape(base_shape)


class CSDIReference(nn.Module):
    """Eager CSDI network (full attention only): forward(z_t, t, cond) → (B, K, L)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        if config.attention != "full":
            raise ValueError("the CSDI reference implements full attention only")
        self.config = config
        c, e = config.channels, config.diffusion_embedding_dim
        self.side_dim = config.time_embedding_dim + config.feature_embedding_dim + 1
        self.embed_layer = nn.Embedding(config.n_features, config.feature_embedding_dim)
        self.projection1 = nn.Linear(e, e)
        self.projection2 = nn.Linear(e, e)
        self.input_projection = nn.Conv1d(2, c, 1)
        self.residual_layers = nn.ModuleList(
            _ReferenceResidualBlock(config, self.side_dim) for _ in range(config.n_layers)
        )
        self.output_projection1 = nn.Conv1d(c, c, 1)
        self.output_projection2 = nn.Conv1d(c, 1, 1)

    def side_info(self, cond: Conditioning) -> Tensor:
        """(B, 145, K, L): [time-stamp embedding, feature embedding, cond mask]."""
        b, k, l = cond.x.shape
        ts = cond.timestamps
        if ts is None:
            ts = torch.arange(l, device=cond.x.device, dtype=cond.x.dtype).expand(b, l)
        time_embed = _position_embedding(ts, self.config.time_embedding_dim)  # (B, L, 128)
        time_embed = time_embed.unsqueeze(2).expand(-1, -1, k, -1)  # (B, L, K, 128)
        feature_embed = self.embed_layer(torch.arange(k, device=cond.x.device))  # (K, 16)
        feature_embed = feature_embed.unsqueeze(0).unsqueeze(0).expand(b, l, -1, -1)
        side = torch.cat([time_embed, feature_embed], dim=-1).permute(0, 3, 2, 1)  # (B, *, K, L)
        return torch.cat([side, cond.mask.unsqueeze(1)], dim=1)  # (B, 145, K, L)

    def forward(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        b, k, l = z_t.shape
        mask = cond.mask
        x = torch.stack([mask * cond.x, (1 - mask) * z_t], dim=1)  # (B, 2, K, L)
        x = F.relu(self.input_projection(x.reshape(b, 2, k * l)))
        x = x.reshape(b, self.config.channels, k, l)
        emb = _position_embedding(t * self.config.time_scale, self.config.diffusion_embedding_dim)
        emb = F.silu(self.projection2(F.silu(self.projection1(emb))))  # (B, 128)
        cond_info = self.side_info(cond)
        skip = []
        for layer in self.residual_layers:
            x, skip_connection = layer(x, cond_info, emb)
            skip.append(skip_connection)
        x = torch.sum(torch.stack(skip), dim=0) / math.sqrt(len(self.residual_layers))
        x = x.reshape(b, self.config.channels, k * l)
        x = self.output_projection2(F.relu(self.output_projection1(x)))  # (B, 1, K·L)
        return x.reshape(b, k, l)


def _reference_state_dict(network: ScoreNetwork) -> dict[str, Tensor]:
    """`network`'s weights under the reference's names (1×1 conv weights gain a trailing axis)."""
    src = network.state_dict()
    d = 2 * network.config.channels
    out: dict[str, Tensor] = {
        "embed_layer.weight": src["side_information.feature_embedding.weight"]
    }

    def same(dst: str, name: str, conv: bool = False) -> None:
        out[f"{dst}.weight"] = src[f"{name}.weight"][..., None] if conv else src[f"{name}.weight"]
        out[f"{dst}.bias"] = src[f"{name}.bias"]

    same("projection1", "diffusion_embedding.projection1")
    same("projection2", "diffusion_embedding.projection2")
    same("input_projection", "input_projection", conv=True)
    same("output_projection1", "output_hidden", conv=True)
    same("output_projection2", "output_projection", conv=True)
    side_w, side_b = (
        src["side_information.projection.weight"],
        src["side_information.projection.bias"],
    )
    for i in range(network.config.n_layers):
        r, n = f"residual_layers.{i}", f"layers.{i}"
        same(f"{r}.diffusion_projection", f"{n}.diffusion_projection")
        out[f"{r}.cond_projection.weight"] = side_w[i * d : (i + 1) * d, :, None]
        out[f"{r}.cond_projection.bias"] = side_b[i * d : (i + 1) * d]
        same(f"{r}.mid_projection", f"{n}.mid_projection", conv=True)
        same(f"{r}.output_projection", f"{n}.output_projection", conv=True)
        for t in ("time_layer", "feature_layer"):
            out[f"{r}.{t}.self_attn.in_proj_weight"] = src[f"{n}.{t}.in_proj.weight"]
            out[f"{r}.{t}.self_attn.in_proj_bias"] = src[f"{n}.{t}.in_proj.bias"]
            same(f"{r}.{t}.self_attn.out_proj", f"{n}.{t}.out_proj")
            for m in ("linear1", "linear2", "norm1", "norm2"):
                same(f"{r}.{t}.{m}", f"{n}.{t}.{m}")
    return out


def reference_from(network: ScoreNetwork) -> CSDIReference:
    """A `CSDIReference` holding `network`'s weights (every reference parameter is set)."""
    p = next(network.parameters())
    ref = CSDIReference(network.config).to(device=p.device, dtype=p.dtype)
    ref.load_state_dict(_reference_state_dict(network), strict=True)
    return ref
