"""Does the demo's model overfit its training windows? Its loss there against fresh windows.

`csdi demo` trains on 1 125 windows of a synthetic Gaussian process (6 features × 24 steps).
If the gap to the oracle came from memorising them, the denoising loss on those windows would
be below the loss on new windows of the same process. This scores a trained demo model's EMA
weights with CSDI's objective (`dsm_loss`, weighting "simple") on both, under the same draws of
training masks, times and noise (`--repeats` passes over each set), and prints the two means
and their paired difference, with standard errors over the passes. The fresh windows come
from the same generator call with more windows (`make_synthetic` draws the first N exactly as
the demo did).
Writes reports/own_data/demo_generalisation.{json,md}.

    csdi demo --output runs/demo_c64_1t --no-tracking --threads 1
    python pipelines/benchmarks/demo_generalisation.py --model runs/demo_c64_1t/model
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import command_line, write_record

from csdi.data.masking import make_cond_mask
from csdi.data.synthetic import make_synthetic
from csdi.data.windows import WindowSet
from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.losses import dsm_loss
from csdi.experiment import load_splits
from csdi.imputer import Imputer
from csdi.training import ModelBatch

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "reports" / "own_data" / "demo_generalisation"


def pass_losses(imputer: Imputer, windows: WindowSet, repeats: int, seed: int) -> np.ndarray:
    """CSDI's loss of `imputer` on fully observed `windows` in each of `repeats` passes
    (repeats,), each with fresh training masks, times and noise from `seed`'s stream."""
    cfg = imputer.config
    network = imputer.network
    assert network is not None
    network.eval()
    batch = ModelBatch.from_windows(replace(windows, cond=None), torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    losses = []
    with torch.no_grad():
        for _ in range(repeats):
            cond_mask = make_cond_mask(
                cfg.train.masking, batch.observed, generator, patterns=batch.observed
            )
            target = batch.observed * (1.0 - cond_mask)
            cond = Conditioning(
                x=batch.values * cond_mask, mask=cond_mask, timestamps=batch.timestamps
            )
            loss = dsm_loss(
                network, batch.values, cond, target, imputer.schedule, generator=generator
            )
            losses.append(float(loss))
    return np.array(losses)


def mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(np.mean(x)), float(np.std(x, ddof=1) / np.sqrt(len(x)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="a `csdi demo` model directory")
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    imputer = Imputer.load(args.model)
    data = imputer.config.data
    if data.dataset != "synthetic":
        raise SystemExit(f"{args.model}: not a demo model (dataset {data.dataset!r})")
    train = load_splits(data).train
    more = make_synthetic(
        data.n_windows + len(train),
        data.n_features,
        data.window,
        missing_ratio=data.missing_ratio,
        rng=np.random.default_rng(data.fold),
    ).windows
    if not np.array_equal(more.values[: len(train)], train.values):
        raise SystemExit("the generator no longer reproduces the demo's windows")
    fresh = more.subset(np.arange(data.n_windows, data.n_windows + len(train)))
    losses = {
        name: pass_losses(imputer, windows, args.repeats, seed=0)
        for name, windows in (("training windows", train), ("fresh windows", fresh))
    }
    losses["fresh − training (paired)"] = losses["fresh windows"] - losses["training windows"]
    rows = []
    for name, x in losses.items():
        mean, se = mean_se(x)
        rows.append({"windows": name, "n": len(train), "loss": mean, "standard_error": se})
        print(f"{name:26s} {len(train)} windows: loss {mean:.4f} ± {se:.4f}", flush=True)
    model = args.model.resolve()
    shown = model.relative_to(ROOT) if model.is_relative_to(ROOT) else Path(model.name)
    lines = [
        "# The demo's model on its training windows and on fresh ones",
        "",
        f"`{command_line(__file__)}` — {platform.machine()}, torch {torch.__version__}; "
        f"model `{shown}`, CSDI's loss (weighting simple) under the same mask, time and noise "
        f"draws, mean ± standard error over {args.repeats} passes.",
        "",
        "| windows | n | loss | ± |",
        "|---|---:|---:|---:|",
        *(
            f"| {r['windows']} | {r['n']} | {r['loss']:.4f} | {r['standard_error']:.4f} |"
            for r in rows
        ),
    ]
    write_record(REPORT, command_line(__file__), platform.machine(), rows, lines)


if __name__ == "__main__":
    main()
