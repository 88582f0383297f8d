"""A post-norm transformer encoder layer on PyTorch's fused attention, and its wide-data variants.

`TransformerLayer` computes the same function as `torch.nn.TransformerEncoderLayer` with
CSDI's arguments (d_model = 64, nhead = 8, dim_feedforward = 64, activation = "gelu", post-norm,
dropout 0.1): x ← LN₁(x + Drop(MHA(x))), x ← LN₂(x + Drop(W₂ Drop(GELU(W₁ x)))), with the
attention computed by `F.scaled_dot_product_attention`. Its parameters carry the same names and
shapes as the PyTorch layer's (`in_proj` ↔ `self_attn.in_proj_*`, `out_proj` ↔
`self_attn.out_proj`), so weights copy across one to one.

Inputs are channel-last, (..., S, C): attention runs over axis −2 with every leading axis a batch
axis, so a (B, K, L, C) state attends across time with no copy.

Not in PyTorch's layer: a learned score b_h added to every head's q_i·k_j/√d, zero at the start
(so the layer starts as PyTorch's), either per signed distance j − i clamped at ±D
(`max_distance`, a relative position bias: Shaw et al. 2018; Raffel et al. 2020, T5) or per
(i, j) pair of a sequence of fixed length (`pair_positions`).

For many features:
- `attention="linear"`: Katharopoulos et al. 2020, "Transformers are RNNs", non-causal form with
  the feature map φ(x) = elu(x) + 1: out_i = φ(q_i)ᵀ Σ_j φ(k_j) v_jᵀ / φ(q_i)ᵀ Σ_j φ(k_j),
  O(S d²) instead of O(S² d).
- `FeatureGroups`: a random partition of the sequence into groups of at most M positions;
  `attend_in_groups` runs the layer within each group (every position still gets an output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

Attention = Literal["full", "linear"]


#: Longest sequence for which bf16 attention on a CPU is computed by two batched matmuls rather
#: than the fused kernel (the fused CPU kernel is 3.5× slower on K = 6 features in bf16,
#: reports/performance/precision.md).
SHORT_SEQUENCE: Final = 16
#: Rows of fp32 scores shorter than this go through a spelt-out softmax: the CPU's fused softmax
#: runs a scalar loop over a last dimension shorter than one AVX-512 vector of 16 floats, slower
#: than amax, exp and sum on the whole tensor (reports/performance/sampler_cpu.md).
SOFTMAX_VECTOR: Final = 16


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> Tensor:
    """softmax(q kᵀ/√d + bias) v with the softmax in fp32 at least; q, k, v (N, H, S, d) →
    (N, H, S, d).

    bias: broadcastable to (N, H, S, S), −inf where a key takes no part (the float `attn_mask`
    of `F.scaled_dot_product_attention`), or a bool mask, True where a key takes part.
    """
    scores = q @ k.transpose(-1, -2)  # (N, H, S, S); bf16 → fp32, fp64 stays fp64:
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32)) * q.shape[-1] ** -0.5
    if bias is not None and bias.dtype == torch.bool:
        scores = scores.masked_fill(~bias, float("-inf"))
    elif bias is not None:
        scores = scores + bias
    if scores.shape[-1] >= SOFTMAX_VECTOR:
        return torch.softmax(scores, dim=-1).to(v.dtype) @ v
    weights = (scores - scores.amax(dim=-1, keepdim=True)).exp_()  # the same softmax, spelt out
    return (weights / weights.sum(dim=-1, keepdim=True)).to(v.dtype) @ v


def linear_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None) -> Tensor:
    """Non-causal linear attention with φ = elu + 1 (Katharopoulos et al. 2020, eq. 5–6).

    q, k, v (N, H, S, d); key_mask (N, 1, 1, S) bool, True where a key takes part → (N, H, S, d).
    """
    phi_q = F.elu(q) + 1.0
    phi_k = F.elu(k) + 1.0
    if key_mask is not None:
        phi_k = phi_k * key_mask.transpose(-1, -2)  # (N, 1, S, 1) zeroes masked keys
    kv = phi_k.transpose(-1, -2) @ v  # (N, H, d, d): Σ_j φ(k_j) v_jᵀ
    normaliser = phi_q @ phi_k.sum(dim=-2, keepdim=True).transpose(-1, -2)  # (N, H, S, 1)
    return (phi_q @ kv) / normaliser


class TransformerLayer(nn.Module):
    """Post-norm encoder layer (self-attention, GELU feed-forward), on fused attention kernels."""

    def __init__(
        self,
        d_model: int = 64,
        n_heads: int = 8,
        ff_dim: int = 64,
        dropout: float = 0.1,
        attention: Attention = "full",
        max_distance: int = 0,
        pair_positions: int = 0,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if attention not in ("full", "linear"):
            raise ValueError(f"attention must be 'full' or 'linear', got {attention!r}")
        for name, value in (("max_distance", max_distance), ("pair_positions", pair_positions)):
            if value < 0 or (value and attention != "full"):
                raise ValueError(
                    f"{name} must be 0, or positive with full attention; got {value} with "
                    f"{attention!r} attention"
                )
        if max_distance and pair_positions:
            raise ValueError("a layer takes a distance bias or a pair bias, not both")
        # learned scores added to the attention's, zero at the start: per head and signed distance
        # j − i ∈ [−D, D], clamped beyond (a relative position bias: Shaw et al. 2018; Raffel
        # et al. 2020, T5), or per head and (query, key) pair of a sequence of fixed length
        self.distance_bias = (
            nn.Parameter(torch.zeros(n_heads, 2 * max_distance + 1)) if max_distance else None
        )
        self.pair_bias = (
            nn.Parameter(torch.zeros(n_heads, pair_positions, pair_positions))
            if pair_positions
            else None
        )
        self.n_heads = n_heads
        self.attention = attention
        self.dropout = dropout
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.linear1 = nn.Linear(d_model, ff_dim)
        self.linear2 = nn.Linear(ff_dim, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout_attn_out = nn.Dropout(dropout)
        self.dropout_ff_hidden = nn.Dropout(dropout)
        self.dropout_ff_out = nn.Dropout(dropout)
        # nn.MultiheadAttention's initialisation
        nn.init.xavier_uniform_(self.in_proj.weight)
        nn.init.zeros_(self.in_proj.bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """x (..., S, C) → (..., S, C); key_mask (..., S) bool, True where a key takes part."""
        shape = x.shape
        s, c = shape[-2], shape[-1]
        h, d = self.n_heads, c // self.n_heads
        x = x.reshape(-1, s, c)  # (N, S, C); a view when x is contiguous
        n = x.shape[0]
        q, k, v = self.in_proj(x).view(n, s, 3, h, d).permute(2, 0, 3, 1, 4)  # 3 × (N, H, S, d)
        mask = None if key_mask is None else key_mask.reshape(n, 1, 1, s)  # (N, 1, 1, S)
        bias = self.score_bias(s, mask, q.dtype)
        p = self.dropout if self.training else 0.0
        cpu = q.device.type == "cpu"
        short_bf16_cpu = cpu and q.dtype == torch.bfloat16 and s <= SHORT_SEQUENCE
        # training a learned bias without a key mask: the fused kernel's math path checks every
        # score row for being all −inf (none can be here) and is 1.3× slower on 48 steps
        bias_grad_cpu = cpu and mask is None and bias is not None and bias.requires_grad
        if self.attention == "full" and (short_bf16_cpu or bias_grad_cpu) and p == 0.0:
            a = explicit_attention(q, k, v, bias)
        elif self.attention == "full":
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        else:
            a = linear_attention(q, k, v, mask)
        a = a.transpose(1, 2).reshape(n, s, c)  # (N, H, S, d) → (N, S, C)
        x = self.norm1(x + self.dropout_attn_out(self.out_proj(a)))
        ff = self.linear2(self.dropout_ff_hidden(F.gelu(self.linear1(x))))
        x = self.norm2(x + self.dropout_ff_out(ff))
        return x.view(shape)

    def score_bias(self, s: int, mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
        """The attention mask for sequences of `s`: `mask` (N, 1, 1, S) bool as given without a
        learned bias; else the bias as a float mask, (1, H, S, S), or (N, H, S, S) with −inf
        where `mask` drops a key."""
        if self.distance_bias is not None:
            reach = (self.distance_bias.shape[1] - 1) // 2
            pos = torch.arange(s, device=self.distance_bias.device)
            offset = (pos[None, :] - pos[:, None]).clamp(-reach, reach) + reach  # (S, S): j − i + D
            bias = self.distance_bias[:, offset]  # (H, S, S)
        elif self.pair_bias is not None:
            if self.pair_bias.shape[-1] != s:
                raise ValueError(
                    f"the layer's pair bias is for sequences of {self.pair_bias.shape[-1]}, got {s}"
                )
            bias = self.pair_bias
        else:
            return mask
        bias = bias[None].to(dtype)  # (1, H, S, S)
        return bias if mask is None else bias.masked_fill(~mask, float("-inf"))


@dataclass(frozen=True)
class FeatureGroups:
    """A random partition of S positions into `n_groups` groups of `size` ≤ M (the last padded).

    perm:     (S,) positions in group order: group g holds perm[g·size:(g+1)·size]
    inverse:  (S,) the inverse permutation
    key_mask: (n_groups, size) bool, False on the padding slots of the last group
    """

    perm: Tensor
    inverse: Tensor
    key_mask: Tensor

    @property
    def n_groups(self) -> int:
        return self.key_mask.shape[0]

    @property
    def size(self) -> int:
        return self.key_mask.shape[1]


def random_feature_groups(
    n: int,
    max_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> FeatureGroups:
    """Partition range(n) uniformly at random into ⌈n / max_size⌉ groups of ≤ max_size.

    `generator=None` draws from torch's global RNG.
    """
    if max_size < 1:
        raise ValueError(f"feature_subset must be at least 1, got {max_size}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(n, generator=generator, device=gen_device).to(device)
    n_groups = math.ceil(n / max_size)
    size = math.ceil(n / n_groups)  # balanced: padding < n_groups slots in all
    key_mask = torch.arange(n_groups * size, device=device) < n  # (G·size,)
    return FeatureGroups(perm=perm, inverse=perm.argsort(), key_mask=key_mask.view(n_groups, size))


def attend_in_groups(layer: TransformerLayer, x: Tensor, groups: FeatureGroups) -> Tensor:
    """Apply `layer` along axis −2 of x (..., S, C) within each group of `groups` only."""
    s = x.shape[-2]
    g, size = groups.n_groups, groups.size
    xp = x.index_select(-2, groups.perm)  # (..., S, C) in group order
    xp = F.pad(xp, (0, 0, 0, g * size - s))  # (..., G·size, C)
    xg = xp.unflatten(-2, (g, size))  # (..., G, size, C)
    key_mask = groups.key_mask.expand(xg.shape[:-1])  # (..., G, size)
    y = layer(xg, key_mask=key_mask).flatten(-3, -2)[..., :s, :]  # (..., S, C) in group order
    return y.index_select(-2, groups.inverse)
