"""Accuracy per CPU minute on PhysioNet 10 % (fold 0): CRPS of EMA snapshots at wall-time marks.

Each recipe trains `csdi train --config pipelines/physionet_10.toml` with its overrides for a
wall-time budget, keeping the EMA weights when training passes each mark (15, 30, 60, 120 min
by default, `train.snapshot_minutes`); every snapshot is then scored on the same test windows
(`fold0_test[:80]`, the first five batches of 16) with the same sampler, sample count and seed,
CSDI's CRPS and MAE of the median in normalised units. The pretrained reference checkpoint
scores CRPS 0.234 / MAE 0.216 there with 20 samples of its 50-step sampler.

    python pipelines/benchmarks/training_budget.py --recipe fast --minutes 60 --threads 1
    python pipelines/benchmarks/training_budget.py --recipe fast --minutes 60 --score-only
    python pipelines/benchmarks/training_budget.py --report   # rewrite the .md from the .json

Runs live in runs/training_budget/RECIPE_BUDGETmin[_Nthreads] (the cosine anneals over the
budget, so a budget is its own run); a snapshot already scored with a protocol is not scored again.

Recipes (`RECIPES`): `csdi` is CSDI's recipe unchanged (its LR milestones at 75 / 90 % of 200
epochs fall far beyond any CPU budget); `fast` is ours: 2 attention heads of width 32, no
dropout, twice CSDI's learning rate with warm-up and a cosine that anneals within the budget;
`fast_prior` is `fast` diffusing the residual from the interpolation (the residual prior);
`fast_conv` is `fast` with a width-5 convolution along time in each residual layer;
`fast_elbo` is `fast` trained with VDM's ELBO weighting on CSDI's fixed schedule and
`fast_learned` the same with VDM's learned schedule (issue 13's PhysioNet comparison);
`fast_c32` is `fast` with 32 channels instead of 64 (a cheaper network: more steps per minute),
`fast_c32_minsnr` the same trained with Min-SNR-γ weights (`diffusion.objective=dsm_min_snr`).
Results: reports/performance/training_budget.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from csdi.config import RECIPES as TRAIN_RECIPES

ROOT = Path(__file__).resolve().parents[2]
CSDI = [sys.executable, "-m", "csdi.cli"]
REPORT = ROOT / "reports" / "performance" / "training_budget"
READING = REPORT.with_name("training_budget_reading.md")
#: CSDI's recipe traced on this CPU in an earlier session (1 thread, the other core loaded),
#: scored with the `s10_ancestral10` protocol on the same 80 windows.
EARLIER = ROOT / "reports" / "physionet_cpu_curve" / "physionet" / "results.json"

RECIPES: dict[str, list[str]] = {
    "csdi": [],  # the config's own settings are CSDI's
    "fast": list(TRAIN_RECIPES["fast"]),
    "fast_c32": list(TRAIN_RECIPES["fast_c32"]),  # ours with 32 channels: more steps per minute
}
# ours with the residual prior (csdi.diffusion.prior): the same recipe on u = (x − μ(c))/s
RECIPES["fast_prior"] = [*RECIPES["fast"], "diffusion.prior_mean=interpolation"]
# ours with a depthwise convolution along time in every residual layer (model.temporal_kernel)
RECIPES["fast_conv"] = [*RECIPES["fast"], "model.temporal_kernel=5"]
# ours trained on VDM's ELBO weighting, with CSDI's fixed schedule or VDM's learned one (issue 13)
RECIPES["fast_elbo"] = [*RECIPES["fast"], "diffusion.objective=dsm_elbo"]
RECIPES["fast_learned"] = [*RECIPES["fast_elbo"], "diffusion.schedule=learned"]
# fast_c32 trained with Min-SNR-γ loss weights (Hang et al. 2023; issue 11's lever list)
RECIPES["fast_c32_minsnr"] = [*RECIPES["fast_c32"], "diffusion.objective=dsm_min_snr"]
#: Evaluation protocols: name → csdi evaluate arguments
PROTOCOLS: dict[str, list[str]] = {
    # the cheap one, as the earlier CPU curve (reports/physionet_cpu_curve)
    "s10_ancestral10": ["--samples", "10", "--sampler", "ancestral", "--steps", "10"],
    # 20 samples, DPM-Solver++ 10 steps on the log-SNR grid (within 1.5 % of 50-step ancestral
    # on the PhysioNet model, reports/performance/sampler_quality_focus.md)
    "s20_dpm10": [
        "--samples",
        "20",
        "--sampler",
        "dpm_solver",
        "--steps",
        "10",
        "--time-grid",
        "logsnr",
    ],
}


def _run(argv: list[str], threads: int) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def _rel(argv: list[str]) -> str:
    return shlex.join(["csdi", *[a.replace(str(ROOT) + "/", "") for a in argv[len(CSDI) :]]])


def train_argv(
    recipe: str, minutes: float, marks: list[float], threads: int, run: Path
) -> list[str]:
    """`csdi train` for a recipe and budget, resuming the run when it has a checkpoint."""
    argv = [*CSDI, "train", "--config", str(ROOT / "pipelines" / "physionet_10.toml")]
    argv += ["--output", str(run), "--no-tracking", "--threads", str(threads)]
    argv += ["--set", f"train.max_minutes={minutes}"]
    argv += ["--set", "train.snapshot_minutes=" + ",".join(f"{m:g}" for m in marks)]
    for s in RECIPES[recipe]:
        argv += ["--set", s]
    if (run / "last.pt").is_file():
        argv.append("--resume")
    return argv


def trained_marks(run: Path) -> list[float]:
    """The snapshot marks a run was trained with (its config.json)."""
    config = json.loads((run / "config.json").read_text())["config"]
    return [float(m) for m in config["train"]["snapshot_minutes"]]


def evaluate(run: Path, snapshot: Path, protocol: str, threads: int) -> dict[str, Any]:
    argv = [*CSDI, "evaluate", "--model", str(run), "--weights", str(snapshot)]
    argv += ["--max-windows", "80", "--no-tracking", "--reports", str(run / "records")]
    argv += PROTOCOLS[protocol]
    _run(argv, threads)
    record = json.loads((run / f"metrics_{snapshot.stem}.json").read_text())
    return {
        "snapshot": snapshot.name,
        "protocol": protocol,
        "train_seconds": record["train_seconds"],
        "crps": record["metrics"]["crps"],
        "mae": record["metrics"]["mae"],
        "coverage_90": record["metrics"]["coverage_90"],
        "impute_seconds": record["impute_seconds"],
        "command": _rel(argv),
        # −ELBO of the held-out values, nats per value with its Monte-Carlo standard error
        "neg_elbo": record["elbo"]["nats_per_value"] if record["elbo"] else None,
        "neg_elbo_se": record["elbo"]["mc_standard_error"] if record["elbo"] else None,
    }


def _key(row: dict[str, Any]) -> tuple[str, float, int, str, str]:
    return (row["recipe"], row["budget_minutes"], row["threads"], row["snapshot"], row["protocol"])


def earlier_reference() -> list[dict[str, Any]]:
    """The CSDI-recipe points of `EARLIER` in this report's row format."""
    if not EARLIER.is_file():
        return []
    rows = []
    for r in json.loads(EARLIER.read_text()):
        if (r["n_samples"], r["sampler"], r["steps"]) != (10, "ancestral", 10):
            continue
        rows.append(
            {
                "recipe": "csdi (reports/physionet_cpu_curve)",
                "threads": 1,
                "train_seconds": r["train_seconds"],
                "step": 175 * r["epochs"],
                "protocol": "s10_ancestral10",
                "crps": r["metrics"]["crps"],
                "mae": r["metrics"]["mae"],
                "coverage_90": r["metrics"]["coverage_90"],
            }
        )
    return rows


def run_name(recipe: str, minutes: float, threads: int) -> str:
    """The run folder of a recipe trained for a budget (its cosine anneals over that budget) on
    `threads` threads (the number of steps a budget buys depends on them)."""
    return f"{recipe}_{minutes:g}min" + ("" if threads == 1 else f"_{threads}threads")


def snapshot_step(path: Path) -> int:
    """The optimizer step stored in a snapshot."""
    return int(torch.load(path, weights_only=True)["step"])


def _elbo_cell(row: dict[str, Any]) -> str:
    """The −ELBO of a row as "value ± s.e.", or "—" for rows scored before it was recorded."""
    if row.get("neg_elbo") is None:
        return "—"
    return f"{row['neg_elbo']:.3f} ± {row['neg_elbo_se']:.3f}"


def write_report(rows: list[dict[str, Any]]) -> None:
    rows = rows + earlier_reference()
    lines = [
        "# Training budget: CRPS against training minutes on PhysioNet 10 % (this 2-core CPU)",
        "",
        "`python pipelines/benchmarks/training_budget.py` — each recipe trains on fold 0 for a "
        "wall-time budget; EMA snapshots at the marks are scored on `fold0_test[:80]` "
        "(2611 held-out targets), normalised units, seed 0. The pretrained reference CSDI "
        "checkpoint scores CRPS 0.234 / MAE 0.216 there (20 samples, its 50-step sampler). "
        "Training minutes are wall time of the training process, validations included.",
        "",
        "| recipe | budget min | threads | minutes | step | protocol "
        "| CRPS | MAE | coverage 90 % | −ELBO nats/value (± s.e.) |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]

    def key(r: dict[str, Any]) -> tuple[str, float, str, float]:
        return (r["recipe"], r.get("budget_minutes", 0.0), r["protocol"], r["train_seconds"])

    for r in sorted(rows, key=key):
        budget = r.get("budget_minutes", "")
        lines.append(
            f"| {r['recipe']} | {budget} | {r['threads']} | {r['train_seconds'] / 60:.1f} | "
            f"{r.get('step', '')} | {r['protocol']} | {r['crps']:.4f} | {r['mae']:.4f} | "
            f"{r['coverage_90']:.3f} | {_elbo_cell(r)} |"
        )
    commands = sorted({r["train_command"] for r in rows if "train_command" in r})
    lines += ["", "Training commands:", "", *[f"    {c}" for c in commands], ""]
    machines = sorted({r["machine"] for r in rows if "machine" in r})
    lines += [f"Machine: {'; '.join(machines)}.", ""]
    if READING.is_file():  # the written reading of the figures, kept across regenerations
        lines += [READING.read_text().rstrip()]
    REPORT.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", choices=sorted(RECIPES), default="fast")
    p.add_argument("--minutes", type=float, default=120.0)
    p.add_argument("--marks", default="15,30,60,120")
    p.add_argument("--threads", type=int, default=1, help="of training (names the run)")
    p.add_argument(
        "--score-threads", type=int, default=None, help="of scoring (default: --threads)"
    )
    p.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated names")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "training_budget")
    p.add_argument("--report", action="store_true", help="only rewrite the Markdown")
    p.add_argument(
        "--score-only",
        action="store_true",
        help="score the snapshots already written (e.g. on the other core while training runs)",
    )
    args = p.parse_args()
    path = REPORT.with_suffix(".json")
    rows: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []
    if not args.report:
        marks = [float(m) for m in args.marks.split(",") if float(m) <= args.minutes]
        run = args.runs / run_name(args.recipe, args.minutes, args.threads)
        # scoring only: record the command the run was trained with, not these marks
        trained = trained_marks(run) if args.score_only else marks
        argv = train_argv(args.recipe, args.minutes, trained, args.threads, run)
        if not args.score_only:
            _run(argv, args.threads)
        for mark in marks:
            snapshot = run / "snapshots" / f"minutes_{mark:g}.pt"
            for protocol in [q for q in args.protocols.split(",") if q]:
                key = (args.recipe, args.minutes, args.threads, snapshot.name, protocol)
                rows = json.loads(path.read_text()) if path.is_file() else []
                if not snapshot.is_file() or any(_key(r) == key for r in rows):
                    continue
                row = evaluate(run, snapshot, protocol, args.score_threads or args.threads)
                row.update(
                    step=snapshot_step(snapshot),  # kept in the row: runs/ is not
                    recipe=args.recipe,
                    budget_minutes=args.minutes,
                    threads=args.threads,
                    score_threads=args.score_threads or args.threads,
                    train_command=_rel([a for a in argv if a != "--resume"]),
                    machine=f"{platform.machine()}, {os.cpu_count()} cores, torch CPU, "
                    f"{args.threads} thread(s)",
                    date=time.strftime("%Y-%m-%d"),
                )
                # re-read: a --score-only process may have added rows meanwhile
                rows = json.loads(path.read_text()) if path.is_file() else []
                rows.append(row)
                print(json.dumps(row), flush=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(rows, indent=2) + "\n")
    write_report(rows)


if __name__ == "__main__":
    main()
