"""`linear_fill` against numpy's np.interp, its seasonal ends against a loop written from the
seasonal naive forecast's definition, and the network's interpolated conditioning."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.interpolation import extend_seasonally, linear_fill
from csdi.diffusion.prior import ResidualPrior
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


def _seasonal_by_definition(fill: np.ndarray, given: np.ndarray, p: int) -> np.ndarray:
    """One series: after the last given step g, step g + h is the value a whole number of
    seasons back at or before g, the nearest such (h − P·⌈h/P⌉ ≤ 0); before the first given
    step f likewise forwards; kept where that falls outside the series."""
    out = fill.copy()
    if not given.any():
        return out
    steps = np.flatnonzero(given)
    first, last = steps[0], steps[-1]
    for l in range(len(fill)):
        if l > last:
            source = l - p * int(np.ceil((l - last) / p))
        elif l < first:
            source = l + p * int(np.ceil((first - l) / p))
        else:
            continue
        if 0 <= source < len(fill):
            out[l] = fill[source]
    return out


def test_seasonal_ends_repeat_the_last_season() -> None:
    """Random gaps, three features with seasons 1, 5 and 7: equal to the definition series by
    series; season 1 is `linear_fill` itself; the interior and the given values untouched."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, 30, generator=gen, dtype=torch.float64)
    given = torch.rand(40, 3, 30, generator=gen) < 0.4
    given[0, :] = False  # nothing given: stays 0
    given[1, :, 20:] = False  # a forecast: the horizon hidden
    fill = linear_fill(x, given)
    period = torch.tensor([1, 5, 7])
    out = extend_seasonally(fill, given, period)
    for n in range(40):
        for k in range(3):
            want = _seasonal_by_definition(fill[n, k].numpy(), given[n, k].numpy(), int(period[k]))
            np.testing.assert_array_equal(out[n, k].numpy(), want)
    assert torch.equal(out[:, 0], fill[:, 0])
    assert torch.equal(out[0], torch.zeros(3, 30, dtype=torch.float64))
    # the hidden horizon of window 1 repeats the last 5 and 7 steps before it
    last = int(torch.nonzero(given[1, 1])[-1])
    assert torch.equal(out[1, 1, last + 1 : last + 6], fill[1, 1, last - 4 : last + 1])


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


def test_a_set_fill_is_the_networks_dense_input() -> None:
    """`Conditioning.fill` replaces the interpolation as the dense input channel: the linear
    fill passed as `fill` gives the same output as none (also with the per-window centring),
    another fill changes it; a residual prior with seasons attaches its mean, one without
    leaves the conditioning as it is; repeat, slice and to carry the fill."""
    torch.manual_seed(0)
    for centre in (False, True):
        config = NetworkConfig(
            n_features=3, channels=16, n_heads=2, n_layers=1, cond_input="both", cond_centre=centre
        )
        net = ScoreNetwork(config).eval()
        torch.nn.init.normal_(net.output_projection.weight)
        x = torch.randn(2, 3, 10)
        mask = (torch.rand(2, 3, 10) < 0.5).float()
        mask[:, :, 0] = 1.0
        z, t = torch.randn(2, 3, 10), torch.full((2,), 0.5)
        plain = Conditioning(x=x * mask, mask=mask)
        same = replace(plain, fill=linear_fill(plain.x, mask > 0))
        torch.testing.assert_close(net(z, t, plain), net(z, t, same))
        other = replace(plain, fill=same.fill + torch.randn(2, 3, 10) * (1 - mask))
        assert not torch.allclose(net(z, t, plain), net(z, t, other))
    seasonal = ResidualPrior(torch.ones(3), torch.tensor([1, 2, 3]))
    attached = seasonal.attach(plain)
    assert attached.fill is not None and torch.equal(attached.fill, seasonal.mean(plain))
    assert ResidualPrior(torch.ones(3)).attach(plain) is plain
    assert attached.repeat(2).fill is not None and torch.equal(
        attached.repeat(2).fill, attached.fill.repeat_interleave(2, dim=0)
    )
    assert torch.equal(attached.slice(1, 2).fill, attached.fill[1:2])  # type: ignore[arg-type]
    assert torch.equal(attached.to("cpu").fill, attached.fill)  # type: ignore[arg-type]
