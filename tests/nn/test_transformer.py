"""The fused transformer layer against PyTorch's own, linear attention against its formula, the
distance and pair biases against softmax(q kᵀ/√d + b) written out, and attention within random
feature groups against attention on each group alone."""

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


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kind", ["distance", "pair"])
def test_learned_bias_adds_a_score_per_head_and_query_key_pair(kind: str, masked: bool) -> None:
    """Scores q_i·k_j/√d + b_h(clamp(j − i, −D, D)) (distance) or + b_h(i, j) (pair);
    zero-initialised, so the layer starts as the unbiased one; the bias trains (it receives a
    gradient)."""
    torch.manual_seed(7)
    options = {"max_distance": 3} if kind == "distance" else {"pair_positions": 7}
    layer = TransformerLayer(8, 2, 8, dropout=0.0, **options).double()  # type: ignore[arg-type]
    plain = TransformerLayer(8, 2, 8, dropout=0.0).double()
    plain.load_state_dict(layer.state_dict(), strict=False)
    x = torch.randn(5, 7, 8, dtype=torch.float64, generator=_generator(8))
    key_mask = None
    if masked:
        key_mask = torch.rand(5, 7, generator=_generator(9)) < 0.6
        key_mask[:, 0] = True
    torch.testing.assert_close(layer(x, key_mask), plain(x, key_mask), rtol=0, atol=1e-12)

    table = layer.distance_bias if kind == "distance" else layer.pair_bias
    assert table is not None
    with torch.no_grad():
        table.copy_(torch.randn(table.shape, dtype=torch.float64, generator=_generator(10)))
    if kind == "distance":
        pos = torch.arange(7)
        bias = table[:, (pos[None, :] - pos[:, None]).clamp(-3, 3) + 3]  # [h, i, j] → j − i + D
    else:
        bias = table
    q, k, v = layer.in_proj(x).view(5, 7, 3, 2, 4).permute(2, 0, 3, 1, 4)  # 3 × (N, H, S, d)
    scores = q @ k.transpose(-1, -2) / 2.0 + bias  # (N, H, S, S)
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(5, 7, 8)
    h = layer.norm1(x + layer.out_proj(a))
    expected = layer.norm2(h + layer.linear2(F.gelu(layer.linear1(h))))
    out = layer(x, key_mask)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    # a random projection: the layer norm's outputs sum (and square-sum) to constants
    projection = torch.randn(out.shape, dtype=torch.float64, generator=_generator(11))
    (expected_grad,) = torch.autograd.grad((expected * projection).sum(), table)
    (out * projection).sum().backward()
    assert table.grad is not None
    torch.testing.assert_close(table.grad, expected_grad, rtol=0, atol=1e-12)
    if key_mask is None:  # (with a mask, pairs whose key no window keeps get no gradient)
        assert bool(table.grad.abs().gt(1e-6).all())


def test_learned_bias_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="max_distance"):
        TransformerLayer(8, 2, 8, attention="linear", max_distance=4)
    with pytest.raises(ValueError, match="max_distance"):
        TransformerLayer(8, 2, 8, max_distance=-1)
    with pytest.raises(ValueError, match="pair_positions"):
        TransformerLayer(8, 2, 8, attention="linear", pair_positions=4)
    with pytest.raises(ValueError, match="not both"):
        TransformerLayer(8, 2, 8, max_distance=2, pair_positions=4)
    with pytest.raises(ValueError, match="pair bias is for sequences of 4, got 5"):
        TransformerLayer(8, 2, 8, pair_positions=4)(torch.randn(3, 5, 8))


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
