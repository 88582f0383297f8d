"""torch.compile (inductor) against eager on this CPU: a whole `csdi impute`, and a training step.

Imputation, as a user meets it: a sensor-sized file (1 464 rows × 11 columns, 20 % of the values
missing and a 12-row gap in two columns; random walks on scales 1 … 1000) is imputed with 30
samples by the README's defaults (DPM-Solver++ 10 steps, log-SNR grid, bf16 where native) with
`--compile` off, on with an empty inductor cache (a first run on a machine), and on again with
that cache filled (every later run). A model trained for 20 steps serves: the time depends on
the shapes, not on the weights. Wall seconds of the whole command.

Training: the step time (forward, backward, Adam) of the own-data network (2 heads, no dropout,
both conditioning inputs) at batch 16, eager and compiled, fp32, and the first two steps'
seconds (the compilation).

    python pipelines/benchmarks/compile_speed.py [--threads 2] [--features 11,35]

Writes reports/performance/compile.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from own_data import CSDI, ROOT, _run

from csdi.diffusion.conditioning import Conditioning
from csdi.nn.score_network import NetworkConfig, ScoreNetwork

REPORT = ROOT / "reports" / "performance" / "compile"


def sensor_files(folder: Path, rng: np.random.Generator) -> None:
    """train.csv (4 392 hourly rows) and test.csv (the next 1 464, values hidden), 11 columns."""
    n_train, n_test, k = 4392, 1464, 11
    scales = np.array([1, 10, 100, 1000, 1, 1, 10, 10, 1, 1, 100], dtype=float)
    x = np.cumsum(rng.normal(size=(n_train + n_test, k)), axis=0) * scales
    times = pd.date_range("2014-03-01", periods=n_train + n_test, freq="h")
    columns = [f"c{i}" for i in range(k)]
    train = pd.DataFrame(x[:n_train], columns=columns, index=pd.Index(times[:n_train], name="time"))
    test_values = x[n_train:].copy()
    test_values[rng.random((n_test, k)) < 0.2] = np.nan
    test_values[500:512, [2, 5]] = np.nan
    test = pd.DataFrame(test_values, columns=columns, index=pd.Index(times[n_train:], name="time"))
    train.to_csv(folder / "train.csv")
    test.to_csv(folder / "test.csv")


def impute_rows(threads: int, work: Path) -> list[dict[str, Any]]:
    sensor_files(work, np.random.default_rng(0))
    model = work / "model"
    train = [*CSDI, "-q", "train", "--data", str(work / "train.csv"), "--time-column", "time"]
    train += ["--output", str(model), "--steps", "20", "--no-tracking", "--threads", str(threads)]
    train.append("--force")  # the work folder's model of an earlier run is replaced
    _run(train, threads)
    impute = [*CSDI, "-q", "impute", "--model", str(model), "--input", str(work / "test.csv")]
    impute += ["--time-column", "time", "--samples", "30", "--force"]
    cache = work / "inductor_cache"
    runs = [
        ("eager", [], {}),
        ("compiled, empty cache", ["--compile"], {"TORCHINDUCTOR_CACHE_DIR": str(cache)}),
        ("compiled, cache filled", ["--compile"], {"TORCHINDUCTOR_CACHE_DIR": str(cache)}),
        ("eager (again)", [], {}),
    ]
    rows = []
    for label, extra, more_env in runs:
        out = work / "imputed.csv"
        seconds, _ = _run([*impute, "--output", str(out), *extra], threads, more_env)
        rows.append(
            {"what": "csdi impute, 1464 × 11, 30 samples", "mode": label, "seconds": seconds}
        )
        print(f"impute {label:24s} {seconds:7.1f} s", flush=True)
    return rows


def step_rows(features: list[int], threads: int, steps: int = 20) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    rows = []
    for k in features:
        b, length = 16, 48
        g = torch.Generator().manual_seed(0)
        x = torch.randn(b, k, length, generator=g)
        mask = (torch.rand(b, k, length, generator=g) < 0.8).float()
        stamps = torch.arange(length, dtype=torch.float32).expand(b, length).contiguous()
        cond = Conditioning(x=x * mask, mask=mask, timestamps=stamps)
        z, t = torch.randn(b, k, length, generator=g), torch.rand(b, generator=g)
        for mode in ("eager", "compiled"):
            torch.manual_seed(0)
            config = NetworkConfig(n_features=k, n_heads=2, dropout=0.0, cond_input="both")
            net = ScoreNetwork(config)
            opt = torch.optim.Adam(net.parameters(), 1e-3)
            forward = torch.compile(net) if mode == "compiled" else net

            def step() -> None:
                loss = ((forward(z, t, cond) - x) ** 2).mean()  # noqa: B023 (run in this loop)
                opt.zero_grad()  # noqa: B023
                loss.backward()
                opt.step()  # noqa: B023

            start = time.perf_counter()
            step()
            step()
            first = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(steps):
                step()
            ms = 1000 * (time.perf_counter() - start) / steps
            rows.append(
                {"what": f"training step, K={k}, L=48, batch 16, fp32", "mode": mode,
                 "ms_per_step": ms, "first_two_steps_s": first}
            )  # fmt: skip
            print(
                f"step K={k:3d} {mode:9s} {ms:7.1f} ms/step (first two: {first:.1f} s)", flush=True
            )
    return rows


def write(rows: list[dict[str, Any]], threads: int) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    command = "python pipelines/benchmarks/compile_speed.py " + " ".join(sys.argv[1:])
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    meta = {"command": command.strip(), "machine": machine, "threads": threads,
            "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    REPORT.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    lines = [
        "# torch.compile (inductor) against eager on this CPU",
        "",
        f"`{meta['command']}` — {meta['date']}; {machine}; {threads} thread(s).",
        "",
        "| what | mode | seconds | ms per step | first two steps s |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        sec = f"{r['seconds']:.1f}" if "seconds" in r else ""
        ms = f"{r['ms_per_step']:.1f}" if "ms_per_step" in r else ""
        first = f"{r['first_two_steps_s']:.1f}" if "first_two_steps_s" in r else ""
        lines.append(f"| {r['what']} | {r['mode']} | {sec} | {ms} | {first} |")
    reading = REPORT.parent / "compile_reading.md"
    if reading.is_file():
        lines += ["", reading.read_text().strip()]
    REPORT.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--features", default="11,35", help="K of the training-step timings")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = impute_rows(args.threads, Path(tmp))
    rows += step_rows([int(k) for k in args.features.split(",")], args.threads)
    write(rows, args.threads)


if __name__ == "__main__":
    main()
