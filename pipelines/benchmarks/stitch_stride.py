"""How far apart the windows of a long series may start: imputation time against CRPS.

`csdi impute` cuts a long file into windows of the training length, samples each, and takes
every row from the window where it lies farthest from the edges (`csdi.data.windows.stitch`).
The stride between window starts sets the work (windows ∝ 1/stride) and how much context a row
keeps on its nearer side. This imputes each own-data set's held-out file with a trained model
(`pipelines/benchmarks/own_data.py` trains them) at strides of 1/2, 3/4 and 1 window and scores
the samples as own_data.py does.

    python pipelines/benchmarks/stitch_stride.py --sets pm25_stations,gp_smooth --tag prior

Results: reports/own_data/stitch_stride.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import csdi.imputer as imputer_module
from csdi.imputer import Imputer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_data import score  # the benchmark's own scoring

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "reports" / "own_data" / "stitch_stride"
SHARES = (0.5, 0.75, 1.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="pm25_stations,gp_smooth")
    p.add_argument("--tag", default="default", help="the own_data.py model folder")
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "own_data")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.sets.split(","):
        folder = args.work / name
        truth = dict(np.load(folder / "truth.npz"))
        model = Imputer.load(folder / args.tag / "model")
        frame = pd.read_csv(folder / "test.csv")
        for share in SHARES:
            imputer_module.stitch_stride = lambda n, s=share: max(1, round(n * s))
            start = time.perf_counter()
            result = model.impute(frame, n_samples=args.samples)
            seconds = time.perf_counter() - start
            m = score(result.samples[0], truth)
            row = {
                "set": name,
                "stride_share": share,
                "seconds": round(seconds, 1),
                "crps": m["crps_exact"],
                "mae": m["mae"],
                "coverage_90": m["coverage_90"],
            }
            print(row, flush=True)
            rows.append(row)
    command = "python pipelines/benchmarks/stitch_stride.py " + " ".join(
        a.replace(str(ROOT) + "/", "") for a in sys.argv[1:]
    )
    machine = f"{platform.machine()}, torch CPU, {args.threads} thread(s)"
    REPORT.with_suffix(".json").write_text(
        json.dumps({"command": command, "machine": machine, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "# Stitching stride: imputation time against CRPS",
        "",
        f"`{command}` — {machine}, {args.samples} samples, model `{args.tag}`. The stride is a",
        "share of the window; `csdi impute` uses 3/4 (`csdi.imputer.stitch_stride`).",
        "",
        "| set | stride / window | seconds | CRPS | MAE | coverage 90 % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['stride_share']:g} | {r['seconds']:.1f} | {r['crps']:.4f} | "
            f"{r['mae']:.4f} | {r['coverage_90']:.3f} |"
        )
    REPORT.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
