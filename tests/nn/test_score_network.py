"""ScoreNetwork: contract, exact invariances, CSDI's size, and equivalence with the eager CSDI
reference (nn.TransformerEncoderLayer, Conv1d, side information rebuilt per call)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from csdi.config import SamplingConfig
from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.schedule import get_schedule
from csdi.inference import sample_windows
from csdi.nn.reference import CSDIReference, reference_from
from csdi.nn.score_network import CachedPredictor, NetworkConfig, ScoreNetwork, gated_activation


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(
    b: int, k: int, l: int, seed: int, dtype: torch.dtype = torch.float32, timestamps: bool = True
) -> tuple[Tensor, Tensor, Conditioning]:
    g = _generator(seed)
    x = torch.randn(b, k, l, generator=g, dtype=dtype)
    mask = (torch.rand(b, k, l, generator=g) < 0.4).to(dtype)
    # irregular, increasing time stamps (hours), as in PhysioNet
    ts = torch.rand(b, l, generator=g, dtype=dtype).mul(2.0).cumsum(-1) if timestamps else None
    z = torch.randn(b, k, l, generator=g, dtype=dtype)
    t = torch.rand(b, generator=g, dtype=dtype)
    return z, t, Conditioning(x=x, mask=mask, timestamps=ts)


def _network(config: NetworkConfig, seed: int = 0) -> ScoreNetwork:
    """A network whose zero-initialised output layer is given random weights (else ε̂ ≡ 0)."""
    torch.manual_seed(seed)  # nn.Module initialisation draws from the global RNG
    net = ScoreNetwork(config)
    nn.init.kaiming_normal_(net.output_projection.weight)
    nn.init.normal_(net.output_projection.bias)
    return net


def test_gate_is_sigmoid_times_tanh_and_so_is_its_gradient() -> None:
    """2σ(g)σ(2f) − σ(g) = σ(g)·tanh(f): values and gradients agree with the direct form to
    float rounding, from 0 to saturation (|f| = 60, where σ(2f) is 0 or 1 exactly)."""
    g = torch.linspace(-30.0, 30.0, 121, dtype=torch.float64).repeat_interleave(121)
    f = torch.linspace(-60.0, 60.0, 121, dtype=torch.float64).repeat(121)
    f = torch.cat([f, torch.tensor([0.0, 1e-8, -1e-8], dtype=torch.float64)])
    g = torch.cat([g, torch.zeros(3, dtype=torch.float64)])
    ours = [g.clone().requires_grad_(), f.clone().requires_grad_()]
    direct = [g.clone().requires_grad_(), f.clone().requires_grad_()]
    y = gated_activation(*ours)
    y_direct = torch.sigmoid(direct[0]) * torch.tanh(direct[1])
    torch.testing.assert_close(y, y_direct, rtol=0, atol=1e-15)
    y.sum().backward()
    y_direct.sum().backward()
    for a, b in zip(ours, direct, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-15)
    y32 = gated_activation(g.float(), f.float())
    torch.testing.assert_close(y32, y_direct.detach().float(), rtol=0, atol=3e-7)


def test_output_shape_and_scalar_t() -> None:
    net = _network(NetworkConfig(n_features=6)).eval()
    z, t, cond = _batch(3, 6, 10, seed=1)
    out = net(z, t, cond)
    assert out.shape == (3, 6, 10)
    assert torch.equal(net(z, torch.tensor(0.3), cond), net(z, torch.full((3,), 0.3), cond))


def test_zero_initialised_output_is_exactly_zero() -> None:
    net = ScoreNetwork(NetworkConfig(n_features=5))
    z, t, cond = _batch(2, 5, 7, seed=2)
    assert torch.equal(net(z, t, cond), torch.zeros(2, 5, 7))


def test_output_ignores_z_at_cond_entries_and_x_elsewhere() -> None:
    """Exact: changed (even NaN) values of z_t where cond = 1 and of x where cond = 0."""
    net = _network(NetworkConfig(n_features=5)).eval()
    z, t, cond = _batch(2, 5, 9, seed=3)
    given = cond.mask.bool()
    out = net(z, t, cond)
    z_other = torch.where(given, torch.nan, z)
    x_other = torch.where(given, cond.x, torch.nan)
    cond_other = Conditioning(x=x_other, mask=cond.mask, timestamps=cond.timestamps)
    assert torch.equal(net(z_other, t, cond_other), out)
    # and it does depend on z_t at the target entries
    assert not torch.equal(net(torch.where(given, z, z + 1.0), t, cond), out)


@pytest.mark.parametrize("cond_input", ["masked", "interpolated", "both"])
def test_centred_conditioning_ignores_each_series_level(cond_input: str) -> None:
    """cond_centre: adding a constant per window and feature to the given values leaves ε̂
    unchanged (to float64 rounding), for every conditioning input; without it ε̂ moves."""
    config = NetworkConfig(n_features=4, cond_input=cond_input, cond_centre=True)  # type: ignore[arg-type]
    net = _network(config).double().eval()
    z, t, cond = _batch(3, 4, 12, seed=4, dtype=torch.float64)
    shift = 50.0 * torch.randn(3, 4, 1, generator=_generator(5), dtype=torch.float64)
    shifted = Conditioning(x=cond.x + shift, mask=cond.mask, timestamps=cond.timestamps)
    out = net(z, t, cond)
    torch.testing.assert_close(net(z, t, shifted), out, rtol=0, atol=1e-9)
    plain = _network(replace(config, cond_centre=False)).double().eval()
    assert (plain(z, t, shifted) - plain(z, t, cond)).abs().max() > 1e-2


def test_parameter_count_matches_csdi_physio() -> None:
    """K = 35, C = 64, 4 layers: 414 065 parameters (CSDI's physio model: ≈ 0.41 M)."""
    c, e, k, side = 64, 128, 35, 128 + 16 + 1
    transformer = (c * 3 * c + 3 * c) + (c * c + c) + 2 * (c * 64 + 64) + 2 * 2 * c
    layer = (e * c + c) + (side * 2 * c + 2 * c) + 2 * (c * 2 * c + 2 * c) + 2 * transformer
    expected = 2 * (e * e + e) + k * 16 + (2 * c + c) + 4 * layer + (c * c + c) + (c + 1)
    net = ScoreNetwork(NetworkConfig(n_features=35))
    assert expected == 414_065
    assert sum(p.numel() for p in net.parameters()) == expected
    assert (
        sum(p.numel() for p in CSDIReference(NetworkConfig(n_features=35)).parameters()) == expected
    )


@pytest.mark.parametrize(
    ("dtype", "atol"),
    # float32: rounding of sums of ~10² terms through 4 layers, outputs of order 1-10
    [(torch.float32, 1e-5), (torch.float64, 1e-10)],
)
@pytest.mark.parametrize("timestamps", [True, False])
def test_equivalent_to_eager_csdi_reference(
    dtype: torch.dtype, atol: float, timestamps: bool
) -> None:
    """Same weights → same output as the nn.TransformerEncoderLayer / Conv1d reference (eval)."""
    net = _network(NetworkConfig(n_features=35)).to(dtype)
    ref = reference_from(net).eval()
    net.eval()
    z, t, cond = _batch(2, 35, 48, seed=4, dtype=dtype, timestamps=timestamps)
    with torch.no_grad():
        out, expected = net(z, t, cond), ref(z, t, cond)
    assert expected.abs().max() > 0.1  # a non-trivial function is being compared
    torch.testing.assert_close(out, expected, rtol=0, atol=atol)


@pytest.mark.parametrize(("k", "l"), [(1, 6), (4, 1)])
def test_equivalent_to_reference_with_one_feature_or_one_step(k: int, l: int) -> None:
    """A transformer over a length-1 axis is skipped, as in CSDI."""
    net = _network(NetworkConfig(n_features=k, n_layers=2)).double().eval()
    ref = reference_from(net).eval()
    z, t, cond = _batch(3, k, l, seed=5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(z, t, cond), ref(z, t, cond), rtol=0, atol=1e-10)


@pytest.mark.parametrize(("temporal_kernel", "biases"), [(0, False), (3, True)])
def test_gradients_reach_every_parameter(temporal_kernel: int, biases: bool) -> None:
    config = NetworkConfig(
        n_features=5,
        n_layers=2,
        temporal_kernel=temporal_kernel,
        time_bias=4 if biases else 0,
        feature_bias=biases,
    )
    net = _network(config).train()
    z, t, cond = _batch(2, 5, 8, seed=6)
    net(z, t, cond).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_temporal_convolution_starts_as_csdi_network_and_acts_along_time_only() -> None:
    """Zero-initialised, the convolution path leaves CSDI's function unchanged; trained, it mixes
    values only along time within each series (a shift kernel moves them one step)."""
    base = _network(NetworkConfig(n_features=4, n_layers=2, dropout=0.0)).eval()
    conv = ScoreNetwork(NetworkConfig(n_features=4, n_layers=2, dropout=0.0, temporal_kernel=3))
    missing, unexpected = conv.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all("temporal_conv" in name for name in missing)
    conv.eval()
    z, t, cond = _batch(2, 4, 9, seed=7)
    assert torch.allclose(conv(z, t, cond), base(z, t, cond), atol=1e-6)
    layer = conv.layers[0]
    assert layer.temporal_conv is not None
    with torch.no_grad():
        layer.temporal_conv.weight.zero_()
        layer.temporal_conv.weight[:, 0, 0, 0] = 1.0  # out[l] = in[l - 1], zero-padded
    h = torch.randn(2, 4, 9, 64, generator=_generator(8))  # (B, K, L, C)
    expected = h.clone()
    expected[:, :, 1:] += h[:, :, :-1]
    assert torch.allclose(layer.along_time(h), expected)


def test_feature_subset_trains_on_groups_and_evaluates_on_all_features() -> None:
    config = NetworkConfig(n_features=9, n_layers=2, dropout=0.0, feature_subset=4)
    net = _network(config)
    full = _network(NetworkConfig(n_features=9, n_layers=2, dropout=0.0))  # same seed → same init
    z, t, cond = _batch(2, 9, 6, seed=7)
    # evaluation ignores feature_subset
    assert torch.equal(net.eval()(z, t, cond), full.eval()(z, t, cond))
    net.train()
    a = net(z, t, cond, generator=_generator(8))
    b = net(z, t, cond, generator=_generator(8))
    c = net(z, t, cond, generator=_generator(9))
    assert a.shape == (2, 9, 6) and torch.equal(a, b)
    assert not torch.allclose(a, c)  # another partition, another function
    assert not torch.allclose(a, full(z, t, cond))


def test_feature_subset_covering_all_features_is_full_attention() -> None:
    """One group holding all K features in random order: attention is permutation-equivariant."""
    net = _network(NetworkConfig(n_features=7, n_layers=2, dropout=0.0, feature_subset=7))
    full = _network(NetworkConfig(n_features=7, n_layers=2, dropout=0.0))
    z, t, cond = _batch(2, 7, 5, seed=10)
    out = net.train()(z, t, cond, generator=_generator(11))
    torch.testing.assert_close(out, full.train()(z, t, cond), rtol=0, atol=1e-5)


def test_linear_attention_network_runs_and_learns() -> None:
    net = _network(NetworkConfig(n_features=40, n_layers=2, attention="linear", feature_subset=16))
    z, t, cond = _batch(2, 40, 6, seed=12)
    out = net.train()(z, t, cond, generator=_generator(13))
    assert out.shape == (2, 40, 6) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert net.eval()(z, t, cond).shape == (2, 40, 6)
    with pytest.raises(ValueError, match="full attention"):
        CSDIReference(NetworkConfig(n_features=4, attention="linear"))


def _count_precomputes(net: ScoreNetwork) -> list[Conditioning]:
    """The conditionings `net.precompute` is called with from now on (a list that grows)."""
    calls: list[Conditioning] = []
    precompute = net.precompute

    def counting_precompute(c: Conditioning):  # type: ignore[no-untyped-def]
        calls.append(c)
        return precompute(c)

    net.precompute = counting_precompute  # type: ignore[method-assign]
    return calls


def test_cached_predictor_is_identical_and_precomputes_once_per_cond() -> None:
    net = _network(NetworkConfig(n_features=5, n_layers=2)).eval()
    z, t, cond = _batch(4, 5, 8, seed=14)
    calls = _count_precomputes(net)
    predictor = net.cached(max_entries=2)
    assert isinstance(predictor, CachedPredictor)
    with torch.no_grad():
        expected = net(z, t, cond)
        assert len(calls) == 1
        for step in range(3):
            assert torch.equal(predictor(z, t, cond), expected), step
        assert len(calls) == 2  # one for `expected`, one for the three cached calls
        halves = [cond.slice(0, 2), cond.slice(2, 4)]
        for c in halves + halves:
            predictor(z[:2], t[:2], c)
        assert len(calls) == 4  # two new conds; the first one evicted (max_entries = 2)
        predictor(z, t, cond)
        assert len(calls) == 5


def test_sampling_in_chunks_precomputes_once_per_chunk_not_per_step() -> None:
    """More samples than rows per network call: the sampler cuts each call into chunks, and
    the side information of each chunk is computed once for all steps, with the same samples
    as unchunked sampling."""
    net = _network(NetworkConfig(n_features=3, n_layers=1)).eval()
    calls = _count_precomputes(net)
    rng = np.random.default_rng(0)
    values = rng.standard_normal((2, 6, 3)).astype(np.float32)
    cond = rng.random((2, 6, 3)) < 0.5
    stamps = np.tile(np.arange(6, dtype=np.float32), (2, 1))
    cfg = replace(SamplingConfig(), sampler="ddim", steps=5, n_samples=10, chunk_size=4)
    chunked = sample_windows(
        net, get_schedule("csdi_quad"), values, cond, stamps, cfg, torch.device("cpu")
    )
    assert len(calls) == 2 * 3  # 2 windows, one per batch; 10 samples in chunks of 4, 4, 2
    whole = replace(cfg, chunk_size=64)
    once = sample_windows(
        net, get_schedule("csdi_quad"), values, cond, stamps, whole, torch.device("cpu")
    )
    np.testing.assert_allclose(chunked.samples, once.samples, rtol=1e-4, atol=1e-4)


def test_bad_inputs_raise_value_errors() -> None:
    net = ScoreNetwork(NetworkConfig(n_features=5))
    z, t, cond = _batch(2, 5, 7, seed=15)
    with pytest.raises(ValueError, match="features"):
        net(
            torch.zeros(2, 4, 7), t, Conditioning(x=torch.zeros(2, 4, 7), mask=torch.zeros(2, 4, 7))
        )
    with pytest.raises(ValueError, match="z_t shape"):
        net(z[:, :, :6], t, cond)
    with pytest.raises(ValueError, match="t must have shape"):
        net(z, t[:1], cond)
    with pytest.raises(ValueError, match="timestamps"):
        net(z, t, Conditioning(x=cond.x, mask=cond.mask, timestamps=torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="divisible"):
        NetworkConfig(n_features=5, channels=60, n_heads=8)
    for width in (-1, 4):
        with pytest.raises(ValueError, match="temporal_kernel"):
            NetworkConfig(n_features=5, temporal_kernel=width)
    with pytest.raises(ValueError, match="time_bias"):
        NetworkConfig(n_features=5, time_bias=-1)
    with pytest.raises(ValueError, match="feature_bias"):
        NetworkConfig(n_features=5, feature_bias=True, feature_subset=2)
