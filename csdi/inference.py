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
from csdi.diffusion.conditioning import Conditioning, NoisePredictor
from csdi.diffusion.samplers import sample
from csdi.diffusion.schedule import NoiseSchedule
from csdi.nn.score_network import ScoreNetwork


@dataclass(frozen=True)
class SampleResult:
    samples: np.ndarray  # (N, S, L, K), normalised units
    seconds: float
    network_calls: int


def windows_per_batch(n_samples: int, chunk_size: int | None, default_rows: int = 1600) -> int:
    """How many windows to sample together: all S samples of a window are always in one batch."""
    rows = chunk_size if chunk_size is not None else default_rows
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
) -> SampleResult:
    """Samples (N, S, L, K) of every window, batching windows so that B·S rows fit a chunk.

    values (N, L, K) normalised (anything on non-cond entries is ignored), cond_mask (N, L, K)
    bool, timestamps (N, L). The same `cfg.seed` gives the same samples.
    """
    network.eval()
    n = values.shape[0]
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    per_batch = windows_per_batch(cfg.n_samples, cfg.chunk_size)
    calls = 0
    # side-information projections depend on cond only: computed once per batch, not per step
    predictor = network.cached() if isinstance(network, ScoreNetwork) else network
    # windows are batched so that B·S rows fit a chunk; the sampler chunks only if S alone is more
    inner_chunk = (
        cfg.chunk_size if cfg.chunk_size is not None and cfg.n_samples > cfg.chunk_size else None
    )

    def count_calls(z_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return predictor(z_t, t, cond)

    counted: NoisePredictor = count_calls

    out = np.empty((n, cfg.n_samples, *values.shape[1:]), dtype=np.float32)
    options: dict[str, Any] = {"eta": cfg.eta} if cfg.sampler == "ddim" else {}
    start = time.perf_counter()
    for lo in tqdm(range(0, n, per_batch), desc="sampling", disable=not progress, leave=False):
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
            generator=generator,
            chunk_size=inner_chunk,
            **options,
        )  # (B, S, K, L)
        out[lo:hi] = draws.transpose(-1, -2).cpu().numpy()  # (B, S, L, K)
    return SampleResult(samples=out, seconds=time.perf_counter() - start, network_calls=calls)


def quantiles_of(samples: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Sample quantiles over the sample axis 1 (linear interpolation): (N, S, ...) → (Q, N, ...)."""
    return np.quantile(samples, levels, axis=1)
