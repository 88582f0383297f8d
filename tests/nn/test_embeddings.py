"""Sinusoidal embeddings in closed form; the factored side-information projection against the
(B, 145, K, L) concatenation it replaces."""

from __future__ import annotations

import math

import torch

from csdi.nn.embeddings import DiffusionTimeEmbedding, SideInformation, sinusoidal_embedding


def test_sinusoidal_embedding_closed_form() -> None:
    p = torch.tensor([0.0, 1.5, 47.0, 1234.25], dtype=torch.float64)
    out = sinusoidal_embedding(p, 8)
    for row, pos in zip(out, p.tolist(), strict=True):
        for i in range(4):
            w = 10000.0 ** (-2 * i / 8)
            assert math.isclose(row[2 * i].item(), math.sin(pos * w), abs_tol=1e-12)
            assert math.isclose(row[2 * i + 1].item(), math.cos(pos * w), abs_tol=1e-12)


def test_diffusion_embedding_is_smooth_in_continuous_t() -> None:
    """Any real t works; nearby times give nearby embeddings (the sinusoid's highest frequency is
    1 rad per unit of t·50, so |Δ input| ≤ 50·|Δt| per coordinate)."""
    torch.manual_seed(0)
    emb = DiffusionTimeEmbedding(128, time_scale=50.0).double()
    t = torch.tensor([0.0, 0.0137, 0.5, 1.0], dtype=torch.float64)
    out, out_near = emb(t), emb(t + 1e-6)
    assert out.shape == (4, 128) and torch.isfinite(out).all()
    assert (out - out_near).abs().max() < 1e-3
    assert (emb(t[:1]) - emb(t[1:2])).abs().max() > 1e-3


def test_factored_side_projection_equals_projection_of_concatenation() -> None:
    torch.manual_seed(1)
    k, l, n_layers, d = 6, 9, 3, 10
    side = SideInformation(k, n_layers, d, time_dim=12, feature_dim=4).double()
    g = torch.Generator().manual_seed(2)
    ts = torch.rand(2, l, generator=g, dtype=torch.float64).cumsum(-1)
    mask = (torch.rand(2, k, l, generator=g) < 0.5).double()
    proj = side(ts, mask)
    concat = torch.cat(
        [
            sinusoidal_embedding(ts, 12)[:, None].expand(2, k, l, 12),
            side.feature_embedding.weight[None, :, None].expand(2, k, l, 4),
            mask[..., None],
        ],
        dim=-1,
    )  # (B, K, L, 17)
    full = side.projection(concat).unflatten(-1, (n_layers, d))  # (B, K, L, n_layers, d)
    for i in range(n_layers):
        torch.testing.assert_close(proj.layer(i), full[..., i, :], rtol=0, atol=1e-12)
