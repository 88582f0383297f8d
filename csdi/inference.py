"""Drawing imputation samples for windows, and summarising them.

Windows arrive time-major (N, L, K) in normalised units with a `cond` mask of the entries given
to the model; samples leave as (N, S, L, K), equal to the given values on `cond` entries.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from csdi.config import SamplingConfig
from csdi.data.scaling import ValueBounds
from csdi.diffusion.bounds import ClippedPredictor, clip_targets
from csdi.diffusion.conditioning import Conditioning, NoisePredictor
from csdi.diffusion.elbo import elbo
from csdi.diffusion.noise import WindowNoise
from csdi.diffusion.prior import ResidualPrior
from csdi.diffusion.samplers import NoisyValues, sample
from csdi.diffusion.schedule import NoiseSchedule
from csdi.nn.precision import network_precision, resolve_precision
from csdi.nn.score_network import ScoreNetwork
from csdi.progress import bar_disable


@dataclass(frozen=True)
class SampleResult:
    samples: np.ndarray  # (N, S, L, K), normalised units
    seconds: float
    network_calls: int


TOKENS_PER_CHUNK = 65_536  # rows × K × L per network call when no chunk size is given


GPU_MEMORY_SHARE = 0.5  # of the free GPU memory that one network call may use
ACTIVATIONS_PER_ENTRY = 16  # live tensors of width `channels` per entry at inference (+ slack)


def chunk_rows(
    chunk_size: int | None,
    n_features: int,
    length: int,
    device: torch.device | None = None,
    channels: int = 64,
) -> int:
    """Rows per network call: `chunk_size`, else sized for the device.

    CPU: about TOKENS_PER_CHUNK entries. Bigger calls are not faster per window on a CPU:
    per-token cost grows with the batch once activations outgrow the caches (measured here:
    33 µs/token at 9 k tokens, 66 at 230 k, for K = 6, L = 24; CSDI's own PhysioNet forward is
    2.2× slower per window at batch 160 than 16). With the own-data network in bf16 (K = 11,
    L = 48, 30 samples) smaller calls lose to per-call overhead instead, and 65 536 tokens is
    the fastest of 4 096 … 131 072 (reports/performance/chunk_size.md). GPU: as many rows as
    GPU_MEMORY_SHARE of the free memory holds, at ACTIVATIONS_PER_ENTRY fp32 tensors of
    `channels` per entry plus the attention scores (time attention L per entry, feature
    attention K).
    """
    if chunk_size is not None:
        return chunk_size
    if device is not None and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        per_row = (
            4
            * n_features
            * length
            * (ACTIVATIONS_PER_ENTRY * channels + 2 * max(n_features, length))
        )
        return max(1, int(GPU_MEMORY_SHARE * free) // per_row)
    return max(1, TOKENS_PER_CHUNK // (n_features * length))


def windows_per_batch(n_samples: int, rows: int) -> int:
    """How many windows to sample together so that their B·S rows fit `rows` (at least one)."""
    return max(1, rows // max(n_samples, 1))


def _model_layout(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """Time-major windows (B, L, K) → model layout (B, K, L), float32 on `device`."""
    return torch.from_numpy(a.transpose(0, 2, 1).astype(np.float32)).to(device)


def _window_batch(
    values: np.ndarray,
    cond_mask: np.ndarray,
    timestamps: np.ndarray,
    rows: slice,
    device: torch.device,
) -> tuple[torch.Tensor, Conditioning]:
    """Windows `rows` in model layout: their values x (B, K, L) and the conditioning on the
    `cond_mask` entries (x there, 0 elsewhere) with their time stamps."""
    mask = _model_layout(cond_mask[rows], device)
    x = _model_layout(values[rows], device)
    stamps = torch.from_numpy(timestamps[rows].astype(np.float32)).to(device)
    return x, Conditioning(x=x * mask, mask=mask, timestamps=stamps)


@dataclass(frozen=True)
class Purification:
    """Observed values that carry Gaussian noise to remove (`sample_windows`): its standard
    deviation `std` (K,) in normalised units, and `start` ≥ 1, the multiple of it at which the
    reverse process takes the observed values up (`csdi.diffusion.samplers.NoisyValues`)."""

    std: np.ndarray
    start: float = 1.0


def sampling_workers(device: torch.device, n_windows: int, compiled: bool) -> int:
    """Threads that sample window batches side by side, each on one torch thread: on a CPU one
    per torch thread, at most one per window; elsewhere, or through `torch.compile`, 1.

    The network's calls are too small to keep two intra-op threads busy: the sampler of a
    1 464-row, 11-column file is 1.25× faster as two workers sharing one chunk's tokens than
    as one batch at a time on both threads (reports/performance/sampling_workers.md).
    """
    if device.type != "cpu" or compiled:
        return 1
    return max(1, min(torch.get_num_threads(), n_windows))


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to `n` inside the block, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    purify: Purification | None = None,
    first_window: int = 0,
    prior: ResidualPrior | None = None,
    workers: int | None = None,
) -> SampleResult:
    """Samples (N, S, L, K) of every window, batching windows so that B·S rows fit a chunk.

    values (N, L, K) normalised (anything on non-cond entries is ignored), cond_mask (N, L, K)
    bool, timestamps (N, L). Window i draws from its own stream seeded by (`cfg.seed`, i)
    (`csdi.diffusion.noise.WindowNoise`), so the same seed gives the same samples whatever the
    chunk size or the number of workers, to float32 rounding (`sde` aside: torchsde's Brownian
    motion spans a batch); `first_window` is the index of values[0] in the whole set, so a
    shard of the windows draws what it would draw in one run over all of them. `workers`:
    threads sampling batches side by side, each on one torch thread (None: `sampling_workers`).
    `cfg.precision`: of the network calls only (`csdi.nn.precision`). With `bounds` (model
    units) and `cfg.clip`, every sampler's x̂₀ and the samples stay inside them
    (`csdi.diffusion.bounds`). With `purify` (ancestral sampler only) the `cond_mask` entries
    are noisy observations to purify rather than clean values
    (`csdi.diffusion.samplers.NoisyValues`): nothing is given clean, and every entry is sampled.
    With `prior` (the model's residual prior, `csdi.diffusion.prior`) the sampler runs on the
    residual u and its draws are mapped back to values.
    """
    network.eval()
    prior = None if prior is None else prior.to(device)  # once, not at every network call
    n = values.shape[0]
    channels = network.config.channels if isinstance(network, ScoreNetwork) else 64
    rows = chunk_rows(cfg.chunk_size, values.shape[2], values.shape[1], device, channels)
    if workers is None:
        workers = sampling_workers(device, n, cfg.compile)
    if cfg.chunk_size is None:  # the workers share one chunk's memory (and run 2-4 % faster),
        # down to one window's samples per call: on many cores, calls of a few rows would crawl
        rows = max(rows // workers, min(rows, cfg.n_samples))
    per_batch = windows_per_batch(cfg.n_samples, rows)
    # no worker idle for want of a batch: smaller batches when the windows are few
    per_batch = max(1, min(per_batch, -(-n // workers)))
    batches = [(lo, min(n, lo + per_batch)) for lo in range(0, n, per_batch)]
    # windows are batched so that B·S rows fit a chunk; the sampler chunks only if S alone is more
    inner_chunk = rows if cfg.n_samples > rows else None
    # side-information projections depend on cond only: computed once per batch (per chunk
    # of it), not per step; the cache holds every chunk of a batch
    chunks = 1 if inner_chunk is None else -(-cfg.n_samples // rows)
    precision = resolve_precision(cfg.precision, device)  # once, and refused before any work
    low = high = None
    if bounds is not None and cfg.clip:
        low = torch.as_tensor(bounds.low, dtype=torch.float32, device=device)
        high = torch.as_tensor(bounds.high, dtype=torch.float32, device=device)
    out = np.empty((n, cfg.n_samples, *values.shape[1:]), dtype=np.float32)
    bar = tqdm(total=len(batches), desc="sampling", disable=bar_disable(progress), leave=False)

    def draw(counted: NoisePredictor, lo: int, hi: int) -> torch.Tensor:
        """Samples (B, S, K, L) of windows lo..hi in model units, the given entries as given."""
        x, cond = _window_batch(values, cond_mask, timestamps, slice(lo, hi), device)
        options: dict[str, Any] = {"eta": cfg.eta} if cfg.sampler == "ddim" else {}
        if purify is not None:
            std = torch.as_tensor(purify.std, dtype=torch.float32, device=device)[None, :, None]
            # nothing is given clean: under the residual prior μ = 0 and s = 1 (u = x)
            options["noisy"] = NoisyValues(cond.x, cond.mask, std.expand_as(x), purify.start)
            empty = torch.zeros_like(x)
            cond = Conditioning(x=empty, mask=empty, timestamps=cond.timestamps)
        elif prior is not None:
            cond = prior.attach(cond)
        draws = sample(
            counted,
            cond,
            schedule,
            sampler=cfg.sampler,
            steps=cfg.steps,
            n_samples=cfg.n_samples,
            generator=WindowNoise(cfg.seed, first_window + lo, hi - lo, cfg.n_samples, device),
            chunk_size=inner_chunk,
            time_grid=cfg.time_grid,
            **options,
        )  # (B, S, K, L)
        given = cond.mask[:, None].bool()
        if prior is not None:  # residuals → values; the given entries exactly as given
            draws = torch.where(given, cond.x[:, None], prior.decode(draws, cond))
        if low is not None and high is not None:
            draws = clip_targets(draws, given, low, high)
        return draws

    def run(mine: list[tuple[int, int]]) -> int:
        """Sample the batches `mine` (window ranges) into `out`; the network calls made."""
        calls = 0
        predictor = (
            network.cached(max(16, chunks), compiled=cfg.compile)
            if isinstance(network, ScoreNetwork)
            else network
        )

        def count_calls(z_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
            nonlocal calls
            calls += 1
            with network_precision(precision, device):
                return predictor(z_t, t, cond).to(z_t.dtype)  # the sampler's arithmetic: fp32

        counted: NoisePredictor = count_calls
        if low is not None and high is not None:
            counted = ClippedPredictor(counted, schedule, low, high, prior=prior)
        for lo, hi in mine:
            with torch.no_grad():  # grad mode is per thread, and on in a new one
                draws = draw(counted, lo, hi)
            out[lo:hi] = draws.transpose(-1, -2).cpu().numpy()  # (B, S, L, K)
            bar.update()
        return calls

    start = time.perf_counter()
    shares = [batches[i::workers] for i in range(workers)]  # worker i: batches i, i + W, …
    if workers == 1:
        calls = run(batches)
    else:
        with intra_op_threads(1), ThreadPoolExecutor(workers) as pool:
            calls = sum(pool.map(run, shares))
    bar.close()
    return SampleResult(samples=out, seconds=time.perf_counter() - start, network_calls=calls)


@dataclass(frozen=True)
class ElboSummary:
    """Negative ELBO of the held-out target values (VDM's bound, `csdi.diffusion.elbo.elbo`),
    in nats per target value in the model's normalised units, pooled over windows.

    `mc_standard_error`: the Monte-Carlo error of the estimate on these windows (from two
    independent halves of the time draws); `window_standard_error`: the ratio estimator's error
    over windows (how much the figure would move on other windows of the same data). The three
    terms add up to `nats_per_value`.
    """

    nats_per_value: float
    mc_standard_error: float
    window_standard_error: float
    prior: float
    reconstruction: float
    diffusion: float
    n_targets: int
    n_time_samples: int

    def to_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "units": "nats per target value, normalised units"}


@torch.no_grad()
def elbo_windows(
    network: NoisePredictor,
    schedule: NoiseSchedule,
    values: np.ndarray,
    cond_mask: np.ndarray,
    target_mask: np.ndarray,
    timestamps: np.ndarray,
    device: torch.device,
    *,
    n_time_samples: int = 16,
    seed: int = 0,
    batch_windows: int = 16,
    prior: ResidualPrior | None = None,
) -> ElboSummary:
    """−ELBO of the `target_mask` entries given the `cond_mask` entries, every window.

    values (N, L, K) normalised (entries outside cond ∪ target are ignored), masks (N, L, K)
    bool, timestamps (N, L). Per window two independent halves of `n_time_samples` (even, ≥ 2)
    stratified draws of γ for the diffusion term. Pooled as Σ_w n_w·b_w / Σ_w n_w over windows
    w with n_w targets. With `prior` the bound is the residual's plus the change of
    variables' Σ log s per target value (`ResidualPrior.log_scale_per_value`), which goes to
    the reconstruction term: the figure stays in nats per value of the normalised data.
    """
    if n_time_samples < 2 or n_time_samples % 2:
        raise ValueError(f"n_time_samples must be even and at least 2, got {n_time_samples}")
    if isinstance(network, nn.Module):
        network.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    prior = None if prior is None else prior.to(device)

    # rows: total of half 1, total of half 2, prior, reconstruction, diffusion, n
    per_window: list[np.ndarray] = []
    for lo in range(0, values.shape[0], batch_windows):
        hi = min(values.shape[0], lo + batch_windows)
        x, cond = _window_batch(values, cond_mask, timestamps, slice(lo, hi), device)
        target = _model_layout(target_mask[lo:hi], device)  # (B, K, L)
        known = torch.clamp(cond.mask + target, max=1.0)
        x0 = x * known
        jacobian = torch.zeros(hi - lo, device=device)
        if prior is not None:
            cond = prior.attach(cond)
            x0 = prior.encode(x0, cond) * known  # 0 where nothing is known, as without it
            jacobian = prior.log_scale_per_value(target, cond)
        halves = [
            elbo(
                network,
                x0,
                cond,
                target,
                schedule,
                n_time_samples=n_time_samples // 2,
                generator=generator,
            )
            for _ in range(2)
        ]
        diffusion = 0.5 * (halves[0].diffusion + halves[1].diffusion)
        n_targets = target.flatten(1).sum(1)  # (B,)
        rows = [
            halves[0].total + jacobian,
            halves[1].total + jacobian,
            halves[0].prior,
            halves[0].reconstruction + jacobian,
        ]
        per_window.append(torch.stack([*rows, diffusion, n_targets], 1).double().cpu().numpy())
    table = np.concatenate(per_window)  # (N, 6)
    table = table[table[:, 5] > 0]
    if len(table) == 0:
        raise ValueError("no target values to compute the ELBO on")
    counts = table[:, 5]
    per_value = 0.5 * (table[:, 0] + table[:, 1])  # (W,) each window's bound
    pooled = float((per_value * counts).sum() / counts.sum())
    mc_var = ((counts * (table[:, 0] - table[:, 1])) ** 2).sum() / 4.0 / counts.sum() ** 2
    w = len(table)
    resid = (per_value - pooled) * counts
    window_se = float(np.sqrt((resid**2).sum() / max(w * (w - 1), 1)) / counts.mean())

    def mean(column: int) -> float:
        return float((table[:, column] * counts).sum() / counts.sum())

    return ElboSummary(
        nats_per_value=pooled,
        mc_standard_error=float(np.sqrt(mc_var)),
        window_standard_error=window_se,
        prior=mean(2),
        reconstruction=mean(3),
        diffusion=mean(4),
        n_targets=int(counts.sum()),
        n_time_samples=n_time_samples,
    )


def quantiles_of(samples: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Sample quantiles over the sample axis 1 (linear interpolation): (N, S, ...) → (Q, N, ...)."""
    return np.quantile(samples, levels, axis=1)
