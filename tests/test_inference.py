"""Sampling window batches side by side on worker threads (`csdi.inference.sample_windows`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from csdi import inference
from csdi.config import SamplingConfig
from csdi.data.scaling import ValueBounds
from csdi.diffusion.schedule import get_schedule
from csdi.inference import intra_op_threads, sample_windows, sampling_workers
from csdi.nn.score_network import NetworkConfig, ScoreNetwork


def _network() -> ScoreNetwork:
    """A small network with every bias, its output layer given random weights (else ε̂ ≡ 0)."""
    torch.manual_seed(0)  # nn.Module initialisation draws from the global RNG
    net = ScoreNetwork(
        NetworkConfig(
            n_features=3, channels=16, n_layers=1, n_heads=2, time_bias=4, feature_bias=True
        )
    )
    for p in net.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.1)
    return net.eval()


def _windows(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((n, 8, 3)).astype(np.float32)  # (N, L, K)
    cond = rng.random(values.shape) < 0.6
    stamps = np.tile(np.arange(8, dtype=np.float32), (n, 1))
    return values, cond, stamps


def test_workers_draw_what_one_thread_draws() -> None:
    """Five windows in batches of two (three batches), sampled by two worker threads on one
    torch thread each: every window gets the samples one thread gives it (its own noise
    stream), inside the bounds, with the same network calls; the thread count is restored."""
    net = _network()
    values, cond, stamps = _windows(5)
    cfg = replace(SamplingConfig(), sampler="dpm_solver", steps=4, n_samples=3, chunk_size=6)
    edge = np.full(3, 1.5)
    bounds = ValueBounds(low=-edge, high=edge, data_low=-edge, data_high=edge)
    before = torch.get_num_threads()
    args = (net, get_schedule("csdi_quad"), values, cond, stamps, cfg, torch.device("cpu"))
    one = sample_windows(*args, bounds=bounds, workers=1)
    two = sample_windows(*args, bounds=bounds, workers=2)
    assert torch.get_num_threads() == before
    assert one.network_calls == two.network_calls == 3 * 4
    np.testing.assert_allclose(two.samples, one.samples, rtol=1e-5, atol=1e-5)
    given = np.broadcast_to(cond[:, None], two.samples.shape)
    assert np.all(np.abs(two.samples[~given]) <= 1.5 + 1e-6)
    np.testing.assert_array_equal(
        two.samples[given], np.broadcast_to(values[:, None], two.samples.shape)[given]
    )


def test_few_windows_are_split_so_that_no_worker_idles() -> None:
    """Two windows that fit one batch, two workers: each samples one window (two batches, so
    twice the network calls of one batch), with the same samples."""
    net = _network()
    values, cond, stamps = _windows(2)
    cfg = replace(SamplingConfig(), sampler="ddim", steps=3, n_samples=2, chunk_size=64)
    args = (net, get_schedule("csdi_quad"), values, cond, stamps, cfg, torch.device("cpu"))
    one = sample_windows(*args, workers=1)
    two = sample_windows(*args, workers=2)
    assert (one.network_calls, two.network_calls) == (3, 6)
    np.testing.assert_allclose(two.samples, one.samples, rtol=1e-5, atol=1e-5)


def test_workers_share_a_chunk_down_to_one_windows_samples(monkeypatch) -> None:
    """Many workers divide the chunk of entries per call, but never below one window's S
    samples: here a chunk of 6 rows over 4 workers would leave 1 row per call (each window's
    4 samples in 4 calls per step); the floor keeps one call per window per step."""
    monkeypatch.setattr(inference, "TOKENS_PER_CHUNK", 6 * 8 * 3)  # 6 rows of 8 × 3
    net = _network()
    values, cond, stamps = _windows(4)
    cfg = replace(SamplingConfig(), sampler="ddim", steps=3, n_samples=4)
    args = (net, get_schedule("csdi_quad"), values, cond, stamps, cfg, torch.device("cpu"))
    assert sample_windows(*args, workers=4).network_calls == 4 * 3


def test_sampling_workers_one_per_cpu_thread_and_window_else_one() -> None:
    with intra_op_threads(2):
        assert sampling_workers(torch.device("cpu"), 41, compiled=False) == 2
        assert sampling_workers(torch.device("cpu"), 1, compiled=False) == 1
        assert sampling_workers(torch.device("cpu"), 41, compiled=True) == 1
        assert sampling_workers(torch.device("cuda"), 41, compiled=False) == 1
    with intra_op_threads(1):
        assert sampling_workers(torch.device("cpu"), 41, compiled=False) == 1


def test_intra_op_threads_restores_the_count_after_an_error() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"), intra_op_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before


def test_an_error_in_a_worker_reaches_the_caller() -> None:
    values, cond, stamps = _windows(4)
    cfg = replace(SamplingConfig(), sampler="ddim", steps=2, n_samples=2, chunk_size=4)

    class Failing(torch.nn.Module):
        def forward(self, z_t: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
            raise RuntimeError("network failed")

    with pytest.raises(RuntimeError, match="network failed"):
        sample_windows(
            Failing(),
            get_schedule("csdi_quad"),
            values,
            cond,
            stamps,
            cfg,
            torch.device("cpu"),
            workers=2,
        )
