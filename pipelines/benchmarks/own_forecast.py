"""Own-data forecasting as a user meets it: `csdi train --data FILE --horizon H` with the
defaults, then forecasts from many origins in a later period, against naive forecasts.

For each real set of `own_data_sets` (the same earlier/later split as the imputation sets,
without their hidden values):
    csdi train --data train.csv --horizon H --output MODEL --no-tracking
then `Forecaster.forecast` from every `--origin-stride`-th row of the later period (each
forecast sees the `context` rows before its origin, gaps as the data has them) and scores the
H rows after it where the data has values, in units of the training file's per-column std:
fair sample CRPS, MAE of the median, 90 % interval coverage. Beside it, on the same rows: the
last value repeated (season 1) and the last day repeated (season 24; both with gaps filled
forward, each from at least its season of history, even where the model's context is shorter),
point forecasts whose CRPS is their MAE. Figures are appended to
reports/own_forecast/results.json and `--report` rewrites reports/own_forecast/README.md.

    python pipelines/benchmarks/own_forecast.py --sets etth1 --horizon 24 --threads 1
        [--reuse] [--samples 30] [--set train.max_minutes=4 …] [--sampler dpm_solver --steps 10
        --time-grid logsnr] [--report]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import own_data_sets as sets

from csdi import metrics as M
from csdi.baselines import seasonal_naive
from csdi.forecaster import Forecaster
from csdi.results import append_record, device_description, git_commit, read_records

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "reports" / "own_forecast"
BUILDERS = {
    "etth1": sets.etth1,
    "pm25_stations": sets.pm25_stations,
    "exchange": sets.exchange,
    "etth2_ot": sets.etth2_ot,  # probes: files never used to choose a default
    "ettm1": sets.ettm1,
}
#: the naive forecasts beside the model: name → season (steps repeated)
NAIVE = {"last value": 1, "last day (season 24)": 24}


def _scores(samples: np.ndarray, truth: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """samples (N, S, H, K), truth (N, H, K) NaN where the data has no value, std (K,)."""
    mask = ~np.isnan(truth)
    y = np.nan_to_num(truth / std)
    x = samples / std
    q = max(1, samples.shape[2] // 4)  # a quarter of the horizon
    lead = {"first": slice(0, q), "last": slice(-q, None)}

    def coverage(steps: slice) -> float:
        if samples.shape[1] == 1:
            return float("nan")
        return M.coverage_90(x[:, :, steps], y[:, steps], mask[:, steps])

    return {
        "crps": M.crps_exact(x, y, mask),
        "mae": M.mae(x, y, mask),
        "coverage_90": coverage(slice(None)),
        **{f"coverage_90_{name}_quarter": coverage(steps) for name, steps in lead.items()},
        "n_values": int(mask.sum()),
    }


def _train(name: str, folder: Path, args: argparse.Namespace) -> tuple[str, float]:
    command = [sys.executable, "-m", "csdi.cli", "-q", "train", "--data", str(folder / "train.csv")]
    command += ["--horizon", str(args.horizon), "--output", str(folder / "model"), "--no-tracking"]
    command += ["--threads", str(args.threads), "--force"]
    command += [a for s in args.set for a in ("--set", s)]
    start = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    (folder / "train.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{name}: training failed:\n{done.stderr}")
    return shlex.join(["csdi", *command[3:]]), time.time() - start


def run_set(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    ds = BUILDERS[name](Path(args.data_dir), np.random.default_rng(0))
    folder = ROOT / "runs" / "own_forecast" / f"{name}_h{args.horizon}_{args.model}"
    folder.mkdir(parents=True, exist_ok=True)
    ds.frame.iloc[: ds.n_train].to_csv(folder / "train.csv")
    if args.reuse and (folder / "model" / "model.pt").is_file():
        command, seconds = "(reused)", float("nan")
    else:
        command, seconds = _train(name, folder, args)
    forecaster = Forecaster.load(folder / "model")
    values = ds.frame.to_numpy(dtype=np.float64)  # (T, K)
    std = np.nanstd(values[: ds.n_train], axis=0)
    c, h = forecaster.context, args.horizon
    origins = np.arange(ds.n_train, len(values) - h + 1, args.origin_stride)  # first row forecast
    histories = np.stack([values[o - c : o] for o in origins])  # (N, C, K)
    truth = np.stack([values[o : o + h] for o in origins])  # (N, H, K)
    start = time.time()
    sampling = {"sampler": args.sampler, "steps": args.steps, "time_grid": args.time_grid}
    result = forecaster.forecast(
        histories,
        horizon=h,
        n_samples=args.samples,
        seed=0,
        calibrated=not args.uncalibrated,
        **sampling,
    )
    forecast_seconds = time.time() - start
    meta = {
        "dataset": name,
        "horizon": h,
        "context": c,
        "origins": len(origins),
        "commit": git_commit(),
        "device": device_description("cpu"),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    model = {
        "method": f"csdi[{args.tag or args.model}]",
        **_scores(result.samples, truth, std),
        **meta,
        "command": command.replace(str(ROOT) + "/", ""),
        "train_seconds": seconds,
        "forecast_seconds": forecast_seconds,
        "samples": args.samples,
        "overrides": list(args.set),
        "spread_calibrated": forecaster.imputer.spread is not None and not args.uncalibrated,
        # what sampled: the options given, else the model's own
        "sampling": {
            k: getattr(forecaster.config.sampling, k) if v is None else v
            for k, v in sampling.items()
        },
    }
    records = [model]
    for method, season in NAIVE.items():
        n = max(c, season)  # a naive forecast sees at least its season, even past the context
        past = np.stack([values[o - n : o] for o in origins])  # (N, n, K)
        windows = np.concatenate([past, np.full_like(truth, np.nan)], axis=1)  # (N, n + H, K)
        point = seasonal_naive(  # (N, 1, n + H, K); a history with no value: the training mean
            windows,
            n_samples=1,
            rng=np.random.default_rng(0),
            train_values=values[None, : ds.n_train],
            season=season,
            horizon=h,
        )
        records.append({"method": method, **_scores(point[:, :, n:], truth, std), **meta})
    return records


def write_report(path: Path) -> None:
    """README.md from results.json: one row per model record, the naive forecasts once per
    set, then each model tag's note."""
    records = read_records(path / "results.json")
    lines = [
        "# Own-data forecasting: `csdi train --data FILE --horizon H`, defaults",
        "",
        "Each set's earlier period (the own-data sets' training files) trains a forecaster with",
        "the own-data defaults (8 minutes, one thread beside another training); forecasts from",
        "every 12th row of the later period, each from the context rows before it, are scored on",
        "the H rows after it where the data has values, in training-std units (30 samples).",
        "Point forecasts' CRPS is their MAE. Command:",
        "",
        "    python pipelines/benchmarks/own_forecast.py --sets NAME --horizon H --threads 1 \\",
        "        [--model TAG --set section.key=value] [--reuse --sampler S --steps N]",
        "",
        "| set | horizon | method | sampler | CRPS | MAE | coverage 90 % | first / last quarter "
        "of the horizon | origins | commit |",
        "|---|---:|---|---|---:|---:|---:|---|---:|---|",
    ]
    seen: set[tuple[Any, ...]] = set()
    notes: dict[str, str] = {}
    for r in records:
        key = (r["dataset"], r["horizon"], r["method"], r["origins"])
        if not r["method"].startswith("csdi[") and key in seen:
            continue
        seen.add(key)
        sampling = r.get("sampling") or {}
        sampler = " ".join(
            str(sampling[k]) for k in ("sampler", "steps", "time_grid") if k in sampling
        )
        cov = "" if r["coverage_90"] != r["coverage_90"] else f"{r['coverage_90']:.3f}"
        first, last = r.get("coverage_90_first_quarter"), r.get("coverage_90_last_quarter")
        by_lead = "" if first is None or first != first else f"{first:.2f} / {last:.2f}"
        lines.append(
            f"| {r['dataset']} | {r['horizon']} | {r['method']} | {sampler} | {r['crps']:.4f} | "
            f"{r['mae']:.4f} | {cov} | {by_lead} | {r['origins']} | {r['commit']} |"
        )
        if "note" in r:
            notes[r["method"]] = r["note"]
    lines += ["", *[f"- `{m}`: {n}" for m, n in notes.items()]]
    commands = sorted({r["command"] for r in records if r.get("command", "(reused)") != "(reused)"})
    lines += ["", "Training commands:", "", *[f"    {c}" for c in commands], ""]
    (path / "README.md").write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="etth1", help=f"comma-separated: {', '.join(BUILDERS)}")
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--origin-stride", type=int, default=12)
    p.add_argument("--model", default="defaults", help="the trained model's name (its folder)")
    p.add_argument("--tag", help="the record's name (default: --model)")
    p.add_argument("--set", action="append", default=[], help="training override section.key=v")
    p.add_argument("--reuse", action="store_true", help="forecast with the set's trained model")
    p.add_argument("--sampler", help="forecast with this sampler (default: the model's)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--time-grid", help="sampler time grid (default: the model's)")
    p.add_argument(
        "--uncalibrated", action="store_true", help="the sampler's spread, without the model's"
    )
    p.add_argument("--data-dir", default=os.environ.get("CSDI_DATA_DIR", "data/raw"))
    p.add_argument("--report", action="store_true", help="only rewrite the README")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not args.report:
        for name in args.sets.split(","):
            for record in run_set(name, args):
                append_record(REPORT / "results.json", record)
                print(json.dumps({k: record[k] for k in ("dataset", "method", "crps", "mae")}))
    write_report(REPORT)


if __name__ == "__main__":
    main()
