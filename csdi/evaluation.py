"""Baselines evaluated under a dataset's protocol, through the same metrics code as the model.

`evaluate_baseline` mirrors `csdi.experiment.evaluate_model`: the same splits (`load_splits`),
the same test windows and targets (observed & ~cond), the same `csdi.metrics.evaluate` in the
same units (PhysioNet: normalised values, as CSDI reports; synthetic: as generated), and the same
results record, written to MLflow and appended to ``reports/<benchmark>/results.json``.

A baseline sees each test window with NaN wherever the protocol does not give the value (not
``cond``), and, as the model does in training, every observed value of the training split.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from csdi import metrics as M
from csdi.baselines import BASELINES, run_baseline
from csdi.checkpoint import save_npz_atomic
from csdi.config import DataConfig, to_dict
from csdi.data.windows import WindowSet
from csdi.experiment import Splits, load_splits, metric_scale
from csdi.results import append_record, device_description, invocation, make_record
from csdi.tracking import Tracker

log = logging.getLogger(__name__)

#: Baselines that return S identical copies of one point imputation (see `csdi.baselines`).
DETERMINISTIC = frozenset({"mean", "locf", "linear", "knn", "seasonal_naive"})


def visible_values(windows: WindowSet) -> np.ndarray:
    """(N, L, K) float64 values with NaN wherever the method is not given the value.

    Test windows: NaN outside ``cond`` (∩ observed). Training windows (cond None): NaN where
    not observed, i.e. every observed training value is visible.
    """
    visible = windows.observed if windows.cond is None else windows.observed & windows.cond
    return np.where(visible, windows.values.astype(np.float64), np.nan)


def save_window_samples(
    path: Path, samples: np.ndarray, test: WindowSet, splits: Splits, method: str
) -> None:
    """Write samples (n, S, L, K) of the first test windows, in original units, to an .npz.

    Keys (the format `csdi.reports` reads): samples, values (n, L, K, NaN where not observed),
    cond, targets (n, L, K) bool, timestamps (n, L), feature_names, method, units.
    """
    n = samples.shape[0]
    scaler = splits.scaler
    values = np.where(test.observed[:n], scaler.inverse(test.values[:n]), np.nan)
    save_npz_atomic(
        path,
        samples=scaler.inverse(samples).astype(np.float32),  # (n, S, L, K)
        values=values,
        cond=test.cond[:n] if test.cond is not None else np.zeros(values.shape, bool),
        targets=test.targets[:n],
        timestamps=test.timestamps[:n],
        feature_names=np.array(test.feature_names),
        method=np.array(method),
        units=np.array("original"),
    )


def evaluate_baseline(
    name: str,
    data_cfg: DataConfig,
    *,
    n_samples: int,
    seed: int,
    max_windows: int | None = None,
    reports_dir: Path | None = Path("reports"),
    track: bool = True,
    benchmark: str | None = None,
    directory: Path | None = None,
    options: dict[str, Any] | None = None,
    train_windows: int | None = None,
    command: str | None = None,
    samples_output: Path | None = None,
    samples_windows: int = 8,
) -> dict[str, Any]:
    """Run baseline ``name`` on the test windows of ``data_cfg``'s protocol; one results record.

    ``benchmark`` names the results file and MLflow experiment (default: the dataset name);
    ``options`` are the baseline's own keywords (`csdi.baselines.run_baseline`; seasonal_naive
    takes its horizon from a forecasting protocol);
    ``train_windows`` limits the training windows the baseline sees to the first N (0: none, the
    baseline then fits on the test windows' visible values alone; None: all), for the costly
    regression imputers;
    ``samples_output`` also writes the samples of the first ``samples_windows`` test windows
    (`save_window_samples`) for the report's band plots.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; valid: {', '.join(sorted(BASELINES))}")
    benchmark = benchmark or data_cfg.dataset
    splits = load_splits(data_cfg, directory)
    if splits.test is None:
        raise ValueError(f"dataset {data_cfg.dataset!r} has no test protocol to evaluate on")
    test = splits.test
    if max_windows is not None:
        test = test.subset(np.arange(min(max_windows, len(test))))
    train = splits.train
    if train_windows is not None:
        train = train.subset(np.arange(min(train_windows, len(train))))
    options = dict(options or {})
    if name == "seasonal_naive" and "horizon" in splits.protocol:
        options.setdefault("horizon", int(splits.protocol["horizon"]))  # the protocol's own
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    samples = run_baseline(
        name,
        visible_values(test),
        n_samples=n_samples,
        rng=rng,
        train_values=visible_values(train) if len(train) else None,
        **options,
    )  # (N, S, L, K)
    seconds = time.perf_counter() - start
    mean, std = metric_scale(splits)
    result = M.evaluate(samples, test.values, test.targets, scaler_mean=mean, scaler_std=std)
    record = make_record(
        dataset=data_cfg.dataset,
        protocol={**splits.protocol, "n_windows": len(test)},
        method=name,
        metrics=result,
        n_samples=n_samples,
        sampler=None,
        steps=None,
        seed=seed,
        epochs=None,
        train_seconds=None,
        impute_seconds=seconds,
        device=device_description("cpu"),
        command=command or invocation(),
        units=splits.units,
        deterministic=name in DETERMINISTIC,
        options=options,
        train_windows=len(train),
    )
    if samples_output is not None:
        save_window_samples(samples_output, samples[:samples_windows], test, splits, name)
    if reports_dir is not None:
        append_record(reports_dir / benchmark / "results.json", record)
    tracker = Tracker(benchmark, enabled=track, run_name=f"baseline {name}")
    with tracker.run():
        tracker.log_params(
            {
                "method": name,
                "n_samples": n_samples,
                "seed": seed,
                **{f"data.{k}": v for k, v in to_dict(data_cfg).items()},
                **{f"options.{k}": v for k, v in (options or {}).items()},
            }
        )
        tracker.log_metrics({k: v for k, v in result.items() if np.isfinite(v)})
    log.info("%s: crps %.4f mae %.4f in %.1f s", name, result["crps"], result["mae"], seconds)
    return record
