"""Imputation time with window batches sampled side by side on one torch thread each, against
one batch at a time on every thread (`csdi.inference.sampling_workers`), on a CPU.

Times `csdi.inference.sample_windows` — the whole sampler, as `csdi impute` runs it, with the
CLI's malloc settings (`csdi.allocator.keep_freed_memory`) — on the workload of
`chunk_size.py` (the issue's 1 464 × 11 sensor file: 41 windows of 48 rows, 30 samples,
DPM-Solver++ 10 steps, the own-data network). Each variant is a number of workers, the tokens
(rows × K × L) of each worker's network calls and their precision; the variants run in
alternation, `--repeats` times each, so the machine's drift falls on all alike. Peak memory is
not measured here (one process runs every variant): `farm-bench` on `csdi impute` measures it.
Writes reports/performance/sampling_workers.{json,md}.

    python pipelines/benchmarks/sampling_workers.py --threads 2 --repeats 3
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

from csdi.allocator import keep_freed_memory

keep_freed_memory()  # before torch allocates, as `csdi` does

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chunk_size import add_workload_options, sensor_workload  # noqa: E402
from record import command_line, write_record  # noqa: E402

from csdi.inference import sample_windows  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "reports" / "performance" / "sampling_workers"


def _variant(text: str) -> tuple[int, int, str]:
    """ "2:65536:auto" → (2, 65536, "auto")."""
    workers, tokens, precision = text.split(":")
    return int(workers), int(tokens), precision


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_options(p)
    p.add_argument(
        "--variants",
        default="1:65536:auto,2:65536:auto,2:32768:auto,2:65536:fp32",
        help="WORKERS:TOKENS:PRECISION, tokens per network call of each worker",
    )
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    config, network, schedule, (values, cond_mask, stamps) = sensor_workload(args)
    length, k = config.data.window, args.features
    variants = [_variant(v) for v in args.variants.split(",")]
    times: dict[tuple[int, int, str], list[float]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for workers, tokens, precision in variants:
            rows = max(1, tokens // (k * length))
            cfg = dataclasses.replace(
                config.sampling, n_samples=args.samples, chunk_size=rows, precision=precision
            )
            res = sample_windows(
                network,
                schedule,
                values,
                cond_mask,
                stamps,
                cfg,
                torch.device("cpu"),
                workers=workers,
            )
            times[(workers, tokens, precision)].append(res.seconds)
            print(f"{workers} worker(s), {tokens} tokens, {precision}: {res.seconds:.1f} s")
    base = statistics.median(times[variants[0]])
    rows_out: list[dict[str, Any]] = [
        {
            "workers": w,
            "tokens": t,
            "precision": pr,
            "seconds": statistics.median(times[(w, t, pr)]),
            "all_seconds": times[(w, t, pr)],
            "speed_up": base / statistics.median(times[(w, t, pr)]),
        }
        for w, t, pr in variants
    ]
    machine = f"{platform.machine()}, {args.threads} thread(s), torch {torch.__version__}"
    command = command_line(__file__)
    lines = [
        "# Window batches sampled side by side (own-data network, CPU)",
        "",
        f"`{command}` — {time.strftime('%Y-%m-%d')}; {machine}. {args.windows} windows of "
        f"{length} rows × {k} features, {args.samples} samples, "
        f"{config.sampling.sampler} {config.sampling.steps} steps; seconds: median of "
        f"{args.repeats} alternating runs of the whole sampler. One worker runs each batch on "
        f"all {args.threads} threads; with W workers, W batches run at once on one thread "
        "each. Speed-up: against the first row.",
        "",
        "| workers | tokens per call | precision | seconds | speed-up | all runs (s) |",
        "|---:|---:|---|---:|---:|---|",
        *[
            f"| {r['workers']} | {r['tokens']} | {r['precision']} | {r['seconds']:.1f} | "
            f"{r['speed_up']:.2f}× | " + ", ".join(f"{s:.1f}" for s in r["all_seconds"]) + " |"
            for r in rows_out
        ],
    ]
    write_record(REPORT, command, machine, rows_out, lines)


if __name__ == "__main__":
    main()
