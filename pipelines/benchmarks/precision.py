"""bf16 against fp32 network calls on trained own-data models: CRPS and imputation time.

For each own-data set already trained by `own_data.py` (runs/own_data/SET/default/model, the
README defaults), `csdi impute` the same held-out file with the same seed and sample count at
`--precision fp32` and `--precision bf16` (alternating, `--repeats` times each, one thread),
scoring both as own_data.py does (units of the training std). Writes
reports/performance/precision.{json,md}.

    python pipelines/benchmarks/precision.py --sets pm25_stations,etth1 --samples 30 --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from own_data import CSDI, ROOT, _run, score
from record import command_line, write_record

from csdi.nn.precision import native_bf16

REPORT = ROOT / "reports" / "performance" / "precision"


def impute(folder: Path, precision: str, samples: int, threads: int) -> tuple[float, np.ndarray]:
    npz = folder / "default" / f"precision_{precision}.npz"
    argv = [*CSDI, "-q", "impute", "--model", str(folder / "default" / "model")]
    argv += ["--input", str(folder / "test.csv"), "--output", str(npz.with_suffix(".csv"))]
    argv += ["--samples", str(samples), "--samples-output", str(npz), "--precision", precision]
    argv += ["--force"]
    seconds, _ = _run(argv, threads)
    return seconds, np.load(npz)["samples"].astype(np.float64)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="pm25_stations,etth1")
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "own_data")
    args = p.parse_args()
    rows: list[dict[str, Any]] = []
    for name in args.sets.split(","):
        folder = args.work / name
        if not (folder / "default" / "model" / "model.pt").is_file():
            raise SystemExit(f"{folder}/default/model not trained: run own_data.py --sets {name}")
        truth = dict(np.load(folder / "truth.npz"))
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        metrics: dict[str, dict[str, float]] = {}
        for _ in range(args.repeats):
            for precision in ("fp32", "bf16"):
                seconds, samples = impute(folder, precision, args.samples, args.threads)
                times[precision].append(seconds)
                metrics[precision] = score(samples, truth)
        for precision in ("fp32", "bf16"):
            m = metrics[precision]
            rows.append(
                {
                    "dataset": name,
                    "precision": precision,
                    "seconds": statistics.median(times[precision]),
                    "all_seconds": times[precision],
                    "crps": m["crps_exact"],
                    "mae": m["mae"],
                    "coverage_90": m["coverage_90"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    machine = (
        f"{platform.machine()}, {torch.get_num_threads()} cores visible, {args.threads} thread(s), "
        f"torch {torch.__version__}, native bf16: {native_bf16(torch.device('cpu'))}"
    )
    command = command_line(__file__)
    lines = [
        "# bf16 network calls against fp32 (own-data models, README defaults)",
        "",
        f"`{command}` — {time.strftime('%Y-%m-%d')}; {machine}. Same model, held-out file, "
        f"seed and {args.samples} samples per precision; the model's sampler (DPM-Solver++ "
        "10 steps, log-SNR grid); seconds are the median wall time of the whole `csdi impute` "
        f"over {args.repeats} alternating runs; CRPS (fair) and MAE in training-std units.",
        "",
        "| set | precision | seconds | CRPS | MAE | coverage 90 % |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['precision']} | {r['seconds']:.1f} | {r['crps']:.4f} | "
            f"{r['mae']:.4f} | {r['coverage_90']:.3f} |"
        )
    write_record(REPORT, command, machine, rows, lines)


if __name__ == "__main__":
    main()
