"""Drawing imputation samples for windows, and summarising them.

Windows arrive time-major (N, L, K) in normalised units with a `cond` mask of the entries given
to the model; samples leave as (N, S, L, K), equal to the given values on `cond` entries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from csdi.config import SamplingConfig
from csdi.data.scaling import ValueBounds
from csdi.diffusion.bounds import ClippedPredictor, clip_targets
from csdi.diffusion.conditioning import Conditioning, NoisePredictor
from csdi.diffusion.noise import WindowNoise
from csdi.diffusion.samplers import sample
from csdi.diffusion.schedule import NoiseSchedule
from csdi.nn.precision import network_precision
from csdi.nn.score_network import ScoreNetwork
from csdi.progress import bar_disable


@dataclass(frozen=True)
class SampleResult:
    samples: np.ndarray  # (N, S, L, K), normalised units
    seconds: float
    network_calls: int


TOKENS_PER_CHUNK = 65_536  # rows × K × L per network call when no chunk size is given


def chunk_rows(chunk_size: int | None, n_features: int, length: int) -> int:
    """Rows per network call: `chunk_size`, else about TOKENS_PER_CHUNK entries.

    Bigger calls are not faster per window on a CPU: per-token cost grows with the batch once
    activations outgrow the caches (measured here: 33 µs/token at 9 k tokens, 66 at 230 k, for
    K = 6, L = 24; CSDI's own PhysioNet forward is 2.2× slower per window at batch 160 than 16).
    """
    if chunk_size is not None:
        return chunk_size
    return max(1, TOKENS_PER_CHUNK // (n_features * length))


def windows_per_batch(n_samples: int, rows: int) -> int:
    """How many windows to sample together so that their B·S rows fit `rows` (at least one)."""
    return max(1, rows // max(n_samples, 1))


@torch.no_grad()
def sample_windows(
    network: nn.Module,
    schedule: NoiseSchedule,
    values: np.ndarray,
    cond_mask: np.ndarray,
    timestamps: np.ndarray,
    cfg: SamplingConfig,
    device: torch.device,
    *,
    progress: bool = False,
    bounds: ValueBounds | None = None,
) -> SampleResult:
    """Samples (N, S, L, K) of every window, batching windows so that B·S rows fit a chunk.

    values (N, L, K) normalised (anything on non-cond entries is ignored), cond_mask (N, L, K)
    bool, timestamps (N, L). Window i draws from its own stream seeded by (`cfg.seed`, i)
    (`csdi.diffusion.noise.WindowNoise`), so the same seed gives the same samples whatever the
    chunk size (`sde` aside: torchsde's Brownian motion spans a batch). `cfg.precision`: of
    the network calls only (`csdi.nn.precision`). With `bounds` (model
    units) and `cfg.clip`, every sampler's x̂₀ and the samples stay inside them
    (`csdi.diffusion.bounds`).
    """
    network.eval()
    n = values.shape[0]
    rows = chunk_rows(cfg.chunk_size, values.shape[2], values.shape[1])
    per_batch = windows_per_batch(cfg.n_samples, rows)
    calls = 0
    # side-information projections depend on cond only: computed once per batch, not per step
    predictor = network.cached() if isinstance(network, ScoreNetwork) else network
    # windows are batched so that B·S rows fit a chunk; the sampler chunks only if S alone is more
    inner_chunk = rows if cfg.n_samples > rows else None

    def count_calls(z_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        nonlocal calls
        calls += 1
        with network_precision(cfg.precision, device):
            return predictor(z_t, t, cond).to(z_t.dtype)  # the sampler's arithmetic stays fp32

    counted: NoisePredictor = count_calls
    low = high = None
    if bounds is not None and cfg.clip:
        low = torch.as_tensor(bounds.low, dtype=torch.float32, device=device)
        high = torch.as_tensor(bounds.high, dtype=torch.float32, device=device)
        counted = ClippedPredictor(counted, schedule, low, high)

    out = np.empty((n, cfg.n_samples, *values.shape[1:]), dtype=np.float32)
    options: dict[str, Any] = {"eta": cfg.eta} if cfg.sampler == "ddim" else {}
    start = time.perf_counter()
    bars = bar_disable(progress)
    for lo in tqdm(range(0, n, per_batch), desc="sampling", disable=bars, leave=False):
        hi = min(n, lo + per_batch)
        mask = torch.from_numpy(cond_mask[lo:hi].transpose(0, 2, 1).astype(np.float32)).to(device)
        x = torch.from_numpy(values[lo:hi].transpose(0, 2, 1).astype(np.float32)).to(device)
        cond = Conditioning(
            x=x * mask,  # (B, K, L)
            mask=mask,
            timestamps=torch.from_numpy(timestamps[lo:hi].astype(np.float32)).to(device),
        )
        draws = sample(
            counted,
            cond,
            schedule,
            sampler=cfg.sampler,
            steps=cfg.steps,
            n_samples=cfg.n_samples,
            generator=WindowNoise(cfg.seed, lo, hi - lo, cfg.n_samples, device),
            chunk_size=inner_chunk,
            time_grid=cfg.time_grid,
            **options,
        )  # (B, S, K, L)
        if low is not None and high is not None:
            draws = clip_targets(draws, mask[:, None].bool(), low, high)
        out[lo:hi] = draws.transpose(-1, -2).cpu().numpy()  # (B, S, L, K)
    return SampleResult(samples=out, seconds=time.perf_counter() - start, network_calls=calls)


def quantiles_of(samples: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Sample quantiles over the sample axis 1 (linear interpolation): (N, S, ...) → (Q, N, ...)."""
    return np.quantile(samples, levels, axis=1)
