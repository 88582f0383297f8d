"""`linear_fill` against numpy's np.interp, and the network's interpolated conditioning."""

from __future__ import annotations

import numpy as np
import torch

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.interpolation import linear_fill
from csdi.nn.score_network import NetworkConfig, ScoreNetwork


def test_linear_fill_equals_np_interp_with_constant_edges() -> None:
    """np.interp interpolates linearly between the given points and holds the end values
    outside them: the same rule; a row with nothing given stays 0."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 24, generator=gen, dtype=torch.float64)
    given = torch.rand(50, 24, generator=gen) < 0.3
    given[0] = False  # nothing given
    given[1] = False
    given[1, 7] = True  # one point: constant
    out = linear_fill(x, given).numpy()
    steps = np.arange(24)
    for i in range(50):
        g = given[i].numpy()
        want = np.interp(steps, steps[g], x[i].numpy()[g]) if g.any() else np.zeros(24)
        np.testing.assert_allclose(out[i], want, atol=1e-12)
    assert np.all(out[given.numpy()] == x.numpy()[given.numpy()])  # given values bit-exact


def test_interpolated_conditioning_changes_only_the_input_channel() -> None:
    """With everything given the two conditionings coincide; with gaps they differ."""
    torch.manual_seed(0)
    masked = ScoreNetwork(NetworkConfig(n_features=3, channels=16, n_heads=2, n_layers=1))
    torch.nn.init.normal_(masked.output_projection.weight)  # non-zero, so outputs can differ
    interp = ScoreNetwork(
        NetworkConfig(n_features=3, channels=16, n_heads=2, n_layers=1, cond_input="interpolated")
    )
    interp.load_state_dict(masked.state_dict())
    masked.eval()
    interp.eval()
    x = torch.randn(2, 3, 10)
    z, t = torch.randn(2, 3, 10), torch.full((2,), 0.5)
    full = Conditioning(x=x, mask=torch.ones_like(x))
    torch.testing.assert_close(masked(z, t, full), interp(z, t, full))
    gaps = Conditioning(x=x, mask=(torch.rand(2, 3, 10) < 0.5).float())
    assert not torch.allclose(masked(z, t, gaps), interp(z, t, gaps))
