"""Two processes × one thread (DDP on gloo) against one process × two threads on this CPU.

Both train the PhysioNet 10 % configuration with the same global batch (16 windows a step:
one process of batch 16, or two ranks of batch 8) for the same number of steps; the figure
is the training time per step from the run's own history (its one validation, at the end,
included: the same work in both). Run it with
both cores idle. Writes reports/performance/ddp_cpu.{json,md}.

    python pipelines/benchmarks/ddp_cpu.py --steps 60
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import command_line, write_record

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "reports" / "performance" / "ddp_cpu"
CSDI = ["-m", "csdi.cli", "-q", "train", "--config", "pipelines/physionet_10.toml", "--no-tracking"]


def run(launcher: list[str], threads: int, batch: int, steps: int, out: Path) -> dict[str, float]:
    argv = [sys.executable, *launcher, *CSDI, "--output", str(out), "--steps", str(steps)]
    argv += ["--threads", str(threads), "--set", f"train.batch_size={batch}"]
    argv += ["--set", f"train.validate_every={steps}", "--set", "model.n_heads=2"]
    argv += ["--set", "model.dropout=0", "--force"]  # replaces an earlier run's model
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    wall = time.perf_counter() - start
    history = torch.load(out / "last.pt", weights_only=True)["history"]
    train_seconds = history["seconds"][-1]
    return {
        "wall_seconds": wall,
        "train_seconds": train_seconds,
        "step_ms": 1000 * train_seconds / steps,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "ddp_cpu")
    args = p.parse_args()
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    rows = {
        "1 process x 2 threads, batch 16": run([], 2, 16, args.steps, args.work / "threads"),
        "2 ranks x 1 thread, batch 8 each": run(torchrun, 1, 8, args.steps, args.work / "ranks"),
    }
    command = command_line(__file__)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    lines = [
        "# Data parallel (2 ranks × 1 thread) against threads (1 process × 2 threads)",
        "",
        f"`{command}` — {time.strftime('%Y-%m-%d')}; {machine}; PhysioNet 10 %, 2 heads, no "
        f"dropout, global batch 16, {args.steps} steps, training time per step from each "
        "run's history (its one validation at the end included, the same work in both).",
        "",
        "| setup | ms per step | wall s (incl. start-up) |",
        "|---|---:|---:|",
        *[f"| {k} | {v['step_ms']:.0f} | {v['wall_seconds']:.0f} |" for k, v in rows.items()],
    ]
    write_record(REPORT, command, machine, rows, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
