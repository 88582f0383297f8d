"""CRPS, coverage and wall time of each sampler and step count on a trained model's test windows.

Issue 6, items 2–3: which sampler reaches the 50-step ancestral CRPS with at most ~10 network
evaluations per sample, and what the full test fold would cost. Every configuration samples the
same windows with the same seed; network calls are counted, not assumed.

    python pipelines/benchmarks/sampler_quality.py --model runs/physionet_10 \
        --windows 40 --samples 20 [--quick]
Writes reports/performance/sampler_quality.json and .md (sampler_quality_focus.* with --focus).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from csdi import metrics as M
from csdi.config import SamplingConfig
from csdi.experiment import load_splits
from csdi.imputer import Imputer
from csdi.inference import chunk_rows, windows_per_batch
from csdi.results import git_commit

# (sampler, steps, eta, time grid): eta only for ddim (1 = the ancestral update, coarser grid)
Config = tuple[str, int, float, str]
CONFIGS: list[Config] = [
    ("ancestral", 50, 1.0, "uniform"),
    ("ancestral", 10, 1.0, "uniform"),
    ("ddim", 10, 0.0, "uniform"),
    ("ddim", 10, 0.5, "uniform"),
    ("dpm_solver", 5, 1.0, "uniform"),
    ("dpm_solver", 10, 1.0, "uniform"),
    ("dpm_solver", 10, 1.0, "logsnr"),
    ("ode", 5, 1.0, "uniform"),
    ("ode", 10, 1.0, "uniform"),
    ("sde", 10, 1.0, "uniform"),
]
QUICK: list[Config] = [
    ("ancestral", 50, 1.0, "uniform"),
    ("ddim", 10, 0.0, "uniform"),
    ("dpm_solver", 10, 1.0, "uniform"),
    ("ode", 5, 1.0, "uniform"),
]
#: --focus: the 50-step reference beside the 10-NFE candidates only (for many windows/samples)
FOCUS: list[Config] = [
    ("ancestral", 50, 1.0, "uniform"),
    ("dpm_solver", 10, 1.0, "uniform"),
    ("dpm_solver", 10, 1.0, "logsnr"),
]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--weights", type=Path, help="weights file (default: the model's best)")
    p.add_argument("--windows", type=int, default=40, help="first N test windows")
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="4 configurations only")
    p.add_argument("--focus", action="store_true", help="ancestral 50 vs the 10-NFE dpm_solver")
    p.add_argument("--output", type=Path, default=Path("reports/performance"))
    args = p.parse_args(argv)

    imputer = Imputer.load(args.model, args.weights)
    splits = load_splits(imputer.config.data)
    assert splits.test is not None
    test = splits.test.subset(np.arange(min(args.windows, len(splits.test))))
    n_full = len(splits.test)
    rows = []
    configs = FOCUS if args.focus else QUICK if args.quick else CONFIGS
    for sampler, steps, eta, grid in configs:
        cfg = replace(
            SamplingConfig(),
            sampler=sampler,
            steps=steps,
            n_samples=args.samples,
            seed=args.seed,
            eta=eta,
            time_grid=grid,  # type: ignore[arg-type]
        )
        start = time.perf_counter()
        samples, _, calls = imputer.sample_normalised(test, cfg)
        seconds = time.perf_counter() - start
        m = M.evaluate(samples, test.values, test.targets)
        k, length = test.values.shape[2], test.values.shape[1]
        per_call = chunk_rows(cfg.chunk_size, k, length)
        batches = math.ceil(len(test) / windows_per_batch(cfg.n_samples, per_call))
        # calls per batch = NFE × ⌈S / rows per call⌉ when S alone exceeds a call's rows
        calls = calls / math.ceil(cfg.n_samples / per_call)
        per_window_sample = seconds / (len(test) * args.samples)
        rows.append(
            {
                "sampler": sampler,
                "steps": steps,
                "eta": eta if sampler == "ddim" else None,
                "time_grid": grid,
                "network_calls_per_sample": calls / batches,  # every batch holds all S samples
                "crps": m["crps"],
                "crps_exact": m["crps_exact"],
                "mae": m["mae"],
                "coverage_50": m["coverage_50"],
                "coverage_90": m["coverage_90"],
                "seconds": seconds,
                "full_fold_100_samples_hours": per_window_sample * n_full * 100 / 3600,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["crps"]
    for r in rows:
        r["crps_vs_first"] = r["crps"] / base - 1.0
    meta = {
        "command": shlex.join(["python", *sys.argv]),
        "model": str(args.model),
        "weights": str(args.weights or "model.pt"),
        "windows": len(test),
        "samples": args.samples,
        "seed": args.seed,
        "machine": f"{platform.platform()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    stem = "sampler_quality_focus" if args.focus else "sampler_quality"
    (args.output / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        "# Sampler quality on a trained model",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}, torch {meta['torch']}; commit {meta['commit']}; "
        f"{meta['date']}  ",
        f"{len(test)} test windows × {args.samples} samples, seed {args.seed}; model "
        f"{args.model} ({meta['weights']}). Same windows and seed for every row; CRPS relative "
        "to the first row.",
        "",
        "| sampler | steps | η | grid | NFE / sample | CRPS | Δ vs first | MAE | cov 50 | cov 90 "
        "| s | full fold ×100 (h) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        eta = "" if r["eta"] is None else f"{r['eta']:g}"
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {eta} | {r.get('time_grid', 'uniform')} | "
            f"{r['network_calls_per_sample']:.0f} | "
            f"{r['crps']:.4f} | {100 * r['crps_vs_first']:+.1f} % | {r['mae']:.4f} | "
            f"{r['coverage_50']:.3f} | {r['coverage_90']:.3f} | {r['seconds']:.0f} | "
            f"{r['full_fold_100_samples_hours']:.2f} |"
        )
    (args.output / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
