"""`csdi demo`: the whole loop on the synthetic Gaussian-process set in a few minutes on a CPU.

Trains a small-data CSDI, imputes held-out test windows, scores the samples against the truth
and against the exact conditional (the oracle: the best CRPS any imputer can reach here), and
plots a few windows with their 50 % / 90 % bands.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from csdi import metrics as M
from csdi.checkpoint import write_text_atomic
from csdi.config import ExperimentConfig, load_config
from csdi.data.windows import WindowSet
from csdi.experiment import load_splits, synthetic_data, train_experiment

log = logging.getLogger(__name__)

DEMO_OVERRIDES = [
    "name=demo",
    "data.dataset=synthetic",
    "data.n_features=6",
    "data.window=24",
    "data.n_windows=1500",
    "data.missing_ratio=0.5",
    "model.n_heads=2",
    "model.dropout=0",
    "model.feature_bias=true",  # CRPS -5 % and -6 % (two training seeds, ablations.md)
    "model.time_bias=24",  # with the feature bias: -2 % and -10 % more (two seeds, ablations.md)
    "model.temporal_kernel=5",  # CRPS -3 % and -10 % (two seeds, paired; ablations.md)
    "model.channels=32",  # with the convolution: 1.9x the steps, CRPS -6 % (two seeds, paired)
    "train.steps=6000",  # a cap for fast machines: on a 2-core CPU the 4 minutes end first
    "train.max_minutes=4",
    "train.batch_size=16",  # 1.7x the steps of batch 32: CRPS -5 %, -1 %, -1.4 % (3 pairs)
    "train.lr=6e-3",
    "train.adam_beta2=0.99",  # CRPS -2.6 % beside the default 0.999 (ablations.md)
    "train.lr_schedule=cosine",
    "train.warmup_steps=100",
    "train.validate_every=500",
    "train.device=auto",
    "sampling.n_samples=30",
    "sampling.sampler=dpm_solver",
    "sampling.steps=10",
    "sampling.time_grid=logsnr",
]
N_TEST = 40  # test windows imputed by the demo (× 30 samples × 50 steps: the costly part)


def demo_config(
    output: Path, steps: int | None = None, overrides: tuple[str, ...] = ()
) -> ExperimentConfig:
    items = [*DEMO_OVERRIDES, f"output_dir={output / 'model'}", *overrides]
    if steps is not None:
        items.append(f"train.steps={steps}")
    return load_config(None, items)


def run_demo(
    output: Path,
    *,
    steps: int | None = None,
    track: bool = True,
    n_test: int = N_TEST,
    overrides: tuple[str, ...] = (),
) -> dict[str, dict[str, float]]:
    """Train, impute `n_test` test windows, score against the oracle, plot; {method: metrics}."""
    cfg = demo_config(output, steps, overrides)
    start = time.perf_counter()
    imputer = train_experiment(cfg, track=track)
    train_seconds = time.perf_counter() - start

    splits = load_splits(cfg.data)
    assert splits.test is not None
    test = splits.test.subset(np.arange(n_test))
    samples, impute_seconds, _ = imputer.sample_normalised(test, cfg.sampling, progress=True)

    # the oracle: exact conditional samples of the same windows
    from csdi.data.synthetic import oracle_samples

    syn = synthetic_data(cfg.data)
    n_all = len(syn.windows)
    first_test = n_all - n_all // 6  # load_splits keeps the last sixth as the test set
    oracle_data = replace(
        syn, windows=syn.windows.subset(np.arange(first_test, first_test + n_test))
    )
    gen = torch.Generator().manual_seed(0)
    oracle = oracle_samples(oracle_data, cfg.sampling.n_samples, gen).astype(np.float32)

    scores = {
        "csdi": M.evaluate(samples, test.values, test.targets),
        "oracle": M.evaluate(oracle, test.values, test.targets),
    }
    history = imputer.history
    summary = {
        "scores": scores,
        "train_seconds": train_seconds,
        "impute_seconds": impute_seconds,
        "train_steps": history.steps[-1] if history is not None and history.steps else 0,
        "n_test_windows": n_test,
        "n_samples": cfg.sampling.n_samples,
        "sampler": cfg.sampling.sampler,
        "sampler_steps": cfg.sampling.steps,
        "time_grid": cfg.sampling.time_grid,
    }
    write_text_atomic(json.dumps(summary, indent=2) + "\n", output / "demo_metrics.json")
    plot = _plot(output / "demo.png", test, samples, oracle)

    print(
        f"\ncsdi demo: synthetic GP, {cfg.data.n_features} features × {cfg.data.window} steps, "
        f"{int(100 * cfg.data.missing_ratio)} % of test entries held out"
    )
    print(
        f"trained {summary['train_steps']} steps in {train_seconds:.0f} s; "
        f"imputed {n_test} windows × {cfg.sampling.n_samples} samples in {impute_seconds:.0f} s"
    )
    print(
        f"{'method':<8}" + "".join(f"{k:>13}" for k in ("crps", "crps_exact", "mae", "coverage_90"))
    )
    for method, m in scores.items():
        print(
            f"{method:<8}"
            + "".join(f"{m[k]:>13.4f}" for k in ("crps", "crps_exact", "mae", "coverage_90"))
        )
    print(f"model: {cfg.output_dir}; metrics: {output / 'demo_metrics.json'}; plot: {plot}")
    return scores


def _plot(path: Path, test: WindowSet, samples: np.ndarray, oracle: np.ndarray) -> Path:
    """Three test windows, feature 0: truth, given points, model and oracle 90 % / 50 % bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert test.cond is not None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), sharey=True)
    steps = np.arange(test.values.shape[1])
    for ax, n in zip(axes, range(3), strict=True):
        k = 0
        s = samples[n, :, :, k]
        o = oracle[n, :, :, k]
        for arr, color, label in ((o, "tab:gray", "oracle"), (s, "tab:blue", "csdi")):
            lo, q25, med, q75, hi = np.quantile(arr, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
            ax.fill_between(steps, lo, hi, color=color, alpha=0.18, lw=0)
            ax.fill_between(steps, q25, q75, color=color, alpha=0.3, lw=0)
            ax.plot(steps, med, color=color, lw=1.3, label=f"{label} median, 50/90 % bands")
        given = test.cond[n, :, k]
        ax.plot(steps, test.values[n, :, k], color="black", lw=0.8, ls="--", label="truth")
        ax.scatter(
            steps[given], test.values[n, given, k], color="black", s=12, zorder=3, label="given"
        )
        ax.set_title(f"test window {n}, feature {test.feature_names[k]}")
        ax.set_xlabel("step")
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
