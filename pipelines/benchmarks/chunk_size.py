"""Imputation time against the rows per network call (`sampling.chunk_size`) on a CPU.

Times `csdi.inference.sample_windows` — the whole sampler, as `csdi impute` runs it — on the
own-data network (`own_data_config()`: 4 layers, 2 heads, the time convolution, its width)
for a file the size of the issue's sensor CSV: 41 windows of 48 rows × K features (1 464 rows
at the 3/4 stitching stride), 30 samples, the defaults' sampler (DPM-Solver++ 10 steps, log-SNR
grid) and precision. Chunk sizes are given in tokens (rows × K × L per call) and run in
alternation, `--repeats` times each; the network is freshly initialised (its cost does not
depend on its weights). Writes reports/performance/chunk_size.{json,md}.

    python pipelines/benchmarks/chunk_size.py --threads 2 --features 11 --repeats 2
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import command_line, write_record

from csdi.config import ExperimentConfig, own_data_config
from csdi.diffusion.schedule import NoiseSchedule, get_schedule
from csdi.inference import TOKENS_PER_CHUNK, sample_windows
from csdi.nn.score_network import NetworkConfig, ScoreNetwork

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "reports" / "performance" / "chunk_size"


def add_workload_options(p: argparse.ArgumentParser) -> None:
    """The sampler workload's size: the issue's sensor file by default (`sensor_windows`)."""
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--features", type=int, default=11)
    p.add_argument("--windows", type=int, default=41)
    p.add_argument("--samples", type=int, default=30)


def sensor_windows(windows: int, length: int, features: int) -> tuple[np.ndarray, ...]:
    """Random values (N, L, K), a cond mask leaving 20 % of the entries to impute, and the
    time stamps (N, L) 0 … L − 1: the sampler's cost depends on these shapes only."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal((windows, length, features))  # (N, L, K)
    cond_mask = rng.random(values.shape) > 0.2  # 20 % to impute
    stamps = np.broadcast_to(np.arange(length, dtype=np.float32), (windows, length)).copy()
    return values, cond_mask, stamps


def sensor_workload(
    args: argparse.Namespace,
) -> tuple[ExperimentConfig, ScoreNetwork, NoiseSchedule, tuple[np.ndarray, ...]]:
    """`args.threads` set; the own-data config, a fresh own-data network for `args.features`,
    its schedule, and `sensor_windows` of the config's window length."""
    torch.set_num_threads(args.threads)
    config = own_data_config()
    k = args.features
    network = ScoreNetwork(NetworkConfig(n_features=k, **dataclasses.asdict(config.model)))
    schedule = get_schedule(config.diffusion.schedule)
    return config, network, schedule, sensor_windows(args.windows, config.data.window, k)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_options(p)
    p.add_argument("--tokens", default="4096,8192,16384,32768,65536,131072")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    config, network, schedule, (values, cond_mask, stamps) = sensor_workload(args)
    length, k = config.data.window, args.features
    tokens = [int(t) for t in args.tokens.split(",")]
    times: dict[int, list[float]] = {t: [] for t in tokens}
    for _ in range(args.repeats):
        for t in tokens:
            rows = max(1, t // (k * length))
            cfg = dataclasses.replace(config.sampling, n_samples=args.samples, chunk_size=rows)
            res = sample_windows(
                network, schedule, values, cond_mask, stamps, cfg, torch.device("cpu")
            )
            times[t].append(res.seconds)
            print(f"{t} tokens ({rows} rows): {res.seconds:.1f} s", flush=True)
    rows_out: list[dict[str, Any]] = [
        {
            "tokens": t,
            "rows": max(1, t // (k * length)),
            "seconds": statistics.median(times[t]),
            "all_seconds": times[t],
        }
        for t in tokens
    ]
    machine = (
        f"{platform.machine()}, {args.threads} thread(s), torch {torch.__version__}, "
        f"precision {config.sampling.precision}"
    )
    command = command_line(__file__)
    lines = [
        "# Rows per network call against imputation time (own-data network, CPU)",
        "",
        f"`{command}` — {time.strftime('%Y-%m-%d')}; {machine}. {args.windows} windows of "
        f"{length} rows × {k} features, {args.samples} samples, "
        f"{config.sampling.sampler} {config.sampling.steps} steps; seconds: median of "
        f"{args.repeats} alternating runs of the whole sampler. The default is "
        f"{TOKENS_PER_CHUNK} tokens (`csdi.inference.TOKENS_PER_CHUNK`).",
        "",
        "| tokens per call | rows per call | seconds |",
        "|---:|---:|---:|",
        *[f"| {r['tokens']} | {r['rows']} | {r['seconds']:.1f} |" for r in rows_out],
    ]
    write_record(REPORT, command, machine, rows_out, lines)


if __name__ == "__main__":
    main()
