"""The fused transformer layer against PyTorch's own, linear attention against its formula, and
attention within random feature groups against attention on each group alone."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from csdi.nn.transformer import (
    TransformerLayer,
    attend_in_groups,
    linear_attention,
    random_feature_groups,
)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_layer_equals_torch_transformer_encoder_layer() -> None:
    """Same weights → same function as nn.TransformerEncoderLayer(64, 8, 64, gelu), eval mode."""
    torch.manual_seed(0)  # nn.Module initialisation draws from the global RNG
    ours = TransformerLayer(64, 8, 64, dropout=0.1).double().eval()
    ref = torch.nn.TransformerEncoderLayer(64, 8, 64, activation="gelu", batch_first=True)
    ref = ref.double().eval()
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(ours.in_proj.weight)
        ref.self_attn.in_proj_bias.copy_(
            torch.randn(192, dtype=torch.float64, generator=_generator(1))
        )
        ours.in_proj.bias.copy_(ref.self_attn.in_proj_bias)
        ref.self_attn.out_proj.load_state_dict(ours.out_proj.state_dict())
        for name in ("linear1", "linear2", "norm1", "norm2"):
            getattr(ref, name).load_state_dict(getattr(ours, name).state_dict())
    x = torch.randn(3, 5, 11, 64, dtype=torch.float64, generator=_generator(2))  # (B, K, L, C)
    expected = ref(x.reshape(15, 11, 64)).reshape(3, 5, 11, 64)
    torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-12)


def test_linear_attention_matches_its_quadratic_form() -> None:
    """out_i = Σ_j A_ij v_j with A_ij ∝ φ(q_i)·φ(k_j) over unmasked j (Katharopoulos eq. 4–6)."""
    g = _generator(3)
    q, k, v = (torch.randn(2, 4, 7, 8, dtype=torch.float64, generator=g) for _ in range(3))
    key_mask = torch.tensor([[1, 1, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    scores = (F.elu(q) + 1) @ (F.elu(k) + 1).transpose(-1, -2)  # (N, H, S, S)
    scores = scores * key_mask[:, None, None, :]
    expected = (scores / scores.sum(-1, keepdim=True)) @ v
    out = linear_attention(q, k, v, key_mask[:, None, None, :])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("attention", ["full", "linear"])
@pytest.mark.parametrize(("n", "max_size"), [(11, 4), (12, 4), (5, 1), (7, 10)])
def test_grouped_attention_equals_attention_on_each_group(
    attention: str, n: int, max_size: int
) -> None:
    torch.manual_seed(4)
    layer = TransformerLayer(16, 4, 16, dropout=0.0, attention=attention).double()  # type: ignore[arg-type]
    groups = random_feature_groups(n, max_size, _generator(5))
    assert sorted(groups.perm.tolist()) == list(range(n))
    assert groups.size <= max_size and int(groups.key_mask.sum()) == n
    x = torch.randn(2, 3, n, 16, dtype=torch.float64, generator=_generator(6))  # (B, L, K, C)
    out = attend_in_groups(layer, x, groups)
    for g in range(groups.n_groups):
        idx = groups.perm[g * groups.size : (g + 1) * groups.size]  # the last group may be short
        torch.testing.assert_close(out[:, :, idx], layer(x[:, :, idx]), rtol=0, atol=1e-12)


def test_feature_groups_are_drawn_from_the_generator() -> None:
    a = random_feature_groups(50, 8, _generator(7)).perm
    b = random_feature_groups(50, 8, _generator(7)).perm
    c = random_feature_groups(50, 8, _generator(8)).perm
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="feature_subset"):
        random_feature_groups(5, 0)
