"""Experiments: the dataset a config names, training with tracking, evaluation under its protocol.

The CLI commands `train` and `evaluate` are thin wrappers over `train_experiment` and
`evaluate_model`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from csdi import checkpoint
from csdi import metrics as M
from csdi.checkpoint import write_text_atomic
from csdi.config import DataConfig, ExperimentConfig, flatten, to_dict
from csdi.data.scaling import Scaler, fit_sensor_scaler
from csdi.data.synthetic import SyntheticData, make_synthetic
from csdi.data.tabular import check_training_values, read_table
from csdi.data.windows import WindowSet
from csdi.distributed import SINGLE, Distributed
from csdi.forecaster import Forecaster, default_context, forecast_splits
from csdi.imputer import Imputer, frame_splits
from csdi.results import append_record, device_description, make_record, portable
from csdi.tracking import Tracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Splits:
    """Normalised windows of a protocol; metrics are reported in `units` (see `metric_scale`)."""

    train: WindowSet
    valid: WindowSet | None
    test: WindowSet | None
    scaler: Scaler
    units: str  # "normalised" or "original"
    protocol: dict[str, Any]
    patterns: np.ndarray | None = None  # (P, L, K) bool historical masks for training (pm25)


def metric_scale(splits: Splits) -> tuple[np.ndarray | float, np.ndarray | float]:
    """(mean, std) that `csdi.metrics.evaluate` un-scales by: identity for normalised units."""
    if splits.units == "normalised":
        return 0.0, 1.0
    return splits.scaler.mean, splits.scaler.std


def data_dir(explicit: str | Path | None = None) -> Path:
    """The raw-data folder: the explicit argument, else CSDI_DATA_DIR, else data/raw."""
    return Path(explicit or os.environ.get("CSDI_DATA_DIR", "data/raw"))


def load_splits(cfg: DataConfig, directory: Path | None = None) -> Splits:
    """Train/valid/test windows for the dataset and protocol in `cfg`."""
    if cfg.dataset == "physionet":
        from csdi.data.physionet import load_physionet

        s = load_physionet(
            data_dir(directory),
            missing_ratio=cfg.missing_ratio,
            fold=cfg.fold,
            normalisation=cfg.normalisation,
        )
        protocol: dict[str, Any] = {
            "missing_ratio": cfg.missing_ratio,
            "fold": cfg.fold,
            "normalisation": cfg.normalisation,
        }
        return Splits(s.train, s.valid, s.test, s.scaler, "normalised", protocol)
    if cfg.dataset == "synthetic":
        syn = synthetic_data(cfg)
        w = syn.windows
        n = len(w)
        n_test, n_valid = n // 6, n // 12
        test = w.subset(np.arange(n - n_test, n))
        valid: WindowSet | None = w.subset(np.arange(n - n_test - n_valid, n - n_test))
        train = replace(w.subset(np.arange(n - n_test - n_valid)), cond=None)
        scaler = Scaler(mean=np.zeros(len(w.feature_names)), std=np.ones(len(w.feature_names)))
        protocol = {
            "missing_ratio": cfg.missing_ratio,
            "n_features": cfg.n_features,
            "window": cfg.window,
            "n_windows": cfg.n_windows,
        }
        return Splits(train, valid, test, scaler, "original", protocol)
    if cfg.dataset == "table":
        if cfg.path is None:
            raise ValueError("data.path is required for dataset 'table' (use --data FILE)")
        frame = read_table(
            cfg.path,
            time_column=cfg.time_column,
            layout=cfg.layout,
            drop_non_numeric=cfg.drop_non_numeric,
            date_order=cfg.date_order,
            missing_values=cfg.missing_values,
        )
        protocol = {"window": cfg.window, "stride": cfg.stride or 1, "path": str(cfg.path)}
        if cfg.horizon is None:
            train, valid, scaler = frame_splits(frame, cfg, cfg.path)
        else:  # forecasting: windows of context + horizon (`Forecaster`'s default context)
            context = cfg.context or default_context(cfg.horizon)
            train, valid, scaler = forecast_splits(
                frame.to_numpy(dtype=np.float64)[None],
                tuple(str(c) for c in frame.columns),
                context,
                cfg.horizon,
                cfg,
                partial(fit_sensor_scaler, log_transform=cfg.log_transform),
            )
            check_training_values(cfg.path, frame, train, scaler)
            protocol |= {"context": context, "horizon": cfg.horizon}
        return Splits(train, valid, None, scaler, "original", protocol)
    if cfg.dataset == "pm25":
        from csdi.data.pm25 import load_pm25

        p = load_pm25(data_dir(directory), validindex=cfg.fold)
        protocol = {"validindex": cfg.fold, "window": 36, "test_months": [3, 6, 9, 12]}
        return Splits(p.train, p.valid, p.test, p.scaler, "original", protocol, p.patterns)
    if cfg.dataset in ("exchange_rate_nips", "etth1", "ettm1"):
        return _forecast_splits(cfg, data_dir(directory))
    raise ValueError(
        f"unknown dataset {cfg.dataset!r}; choose physionet, synthetic, table, pm25, "
        "exchange_rate_nips, etth1 or ettm1"
    )


def _forecast_splits(cfg: DataConfig, directory: Path) -> Splits:
    """exchange_rate_nips (original units, CRPS-sum) or ETT (normalised units, as Informer)."""
    from csdi.data import forecasting as F

    stride = cfg.stride or 1
    context = cfg.context or F.DEFAULT_CONTEXT[cfg.dataset]
    if cfg.dataset == "exchange_rate_nips":
        if cfg.horizon not in (None, F.EXCHANGE_HORIZON):
            raise ValueError(f"exchange_rate_nips forecasts 30 steps; got horizon {cfg.horizon}")
        f = F.load_exchange_rate_nips(directory, context=context, stride=stride)
        units = "original"
    else:
        if cfg.horizon is None:
            raise ValueError(f"dataset {cfg.dataset!r} needs data.horizon (e.g. 24 or 96)")
        f = F.load_ett(
            directory,
            cfg.dataset,
            horizon=cfg.horizon,
            context=context,
            stride=stride,
            test_stride=cfg.test_stride,
        )
        units = "normalised"
    protocol = {
        "horizon": f.horizon,
        "context": f.context,
        "stride": stride,
        "test_stride": cfg.test_stride if cfg.dataset != "exchange_rate_nips" else None,
    }
    return Splits(f.train, f.valid, f.test, f.scaler, units, protocol)


def synthetic_data(cfg: DataConfig) -> SyntheticData:
    """The synthetic Gaussian-process set of a config (seeded: the same config, the same data)."""

    return make_synthetic(
        cfg.n_windows,
        cfg.n_features,
        cfg.window,
        missing_ratio=cfg.missing_ratio,
        rng=np.random.default_rng(cfg.fold),
    )


#: settings a resumed training must share with the run it continues (the rest, e.g. the
#: budget, may change): what the saved weights and optimizer state were made for
RESUME_SECTIONS = ("data.", "model.", "diffusion.")


def check_resumable(out: Path, cfg: ExperimentConfig, feature_names: tuple[str, ...]) -> bool:
    """Whether `out` holds a training to resume (a warning when not: it starts afresh); raise
    ValueError naming the first setting or column in which `cfg` and the file differ from it."""
    if not (out / "last.pt").is_file():
        log.warning("nothing to resume in %s (no last.pt): training from the start", out)
        return False
    saved_path = out / "experiment.json"
    if saved_path.is_file():
        saved = flatten(json.loads(saved_path.read_text()))
        for key, value in flatten(cfg).items():
            compared = key.startswith(RESUME_SECTIONS) and key != "data.path" and key in saved
            if compared and saved[key] != value:  # a key newer than the saved run: its default
                raise ValueError(
                    f"--resume: {key} is {value!r}, but the training in {out} used "
                    f"{saved[key]!r}; resume with the same settings, or --force to start over"
                )
    meta_path = out / "config.json"
    if meta_path.is_file():
        saved_names = tuple(json.loads(meta_path.read_text()).get("feature_names", ()))
        if saved_names and saved_names != feature_names:
            raise ValueError(
                f"--resume: the data's columns {list(feature_names)} are not those the training "
                f"in {out} used ({list(saved_names)}); resume on the same columns, or --force "
                "to start over"
            )
    return True


def train_experiment(
    cfg: ExperimentConfig,
    *,
    resume: bool = False,
    track: bool = True,
    progress: bool = True,
    directory: Path | None = None,
    distributed: Distributed = SINGLE,
) -> Imputer:
    """Load the data, train with tracking, write the model directory `cfg.output_dir`.

    In a torchrun group (`distributed`) every rank trains; rank 0 alone tracks and writes."""
    if cfg.data.dataset == "table" and cfg.data.horizon is not None:
        cfg = Forecaster(cfg).config  # window = context + horizon, the forecast mask
    splits = load_splits(cfg.data, directory)
    n_features = len(splits.train.feature_names)
    sized = cfg.train.for_width(n_features)
    if sized.batch_size != cfg.train.batch_size:
        log.info(
            "%d features: batch %d windows instead of %d (train.max_series_per_batch=%d)",
            n_features,
            sized.batch_size,
            cfg.train.batch_size,
            cfg.train.max_series_per_batch,
        )
        cfg = replace(cfg, train=sized)
    out = Path(cfg.output_dir)
    resume = resume and check_resumable(out, cfg, splits.train.feature_names)
    if not resume and distributed.is_main and (out / "last.pt").is_file():
        (out / "last.pt").unlink()  # an earlier run's resume state: never to be continued now
    if distributed.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json.dumps(to_dict(cfg), indent=2), out / "experiment.json")
    imputer = Imputer(cfg, distributed)
    tracker = Tracker(cfg.name, enabled=track and distributed.is_main, run_name=out.name)
    with tracker.run():
        tracker.log_params(flatten(cfg))
        imputer.fit_windows(
            splits.train,
            splits.valid,
            splits.scaler,
            output_dir=out,
            resume=resume,
            tracker=tracker,
            progress=progress,
            patterns=splits.patterns,
        )
        tracker.log_artifact(out / "config.json")
        tracker.log_model(out)
    return imputer


def evaluate_model(
    model_dir: Path,
    *,
    sampling_overrides: dict[str, Any] | None = None,
    max_windows: int | None = None,
    directory: Path | None = None,
    reports_dir: Path | None = Path("reports"),
    track: bool = True,
    progress: bool = True,
    command: str | None = None,
    weights: Path | None = None,
    device: Literal["cpu", "cuda", "auto"] | None = None,
    samples_output: Path | None = None,
    elbo_time_samples: int = 16,
    distributed: Distributed = SINGLE,
    missing_ratio: float | None = None,
    calibrated: bool = True,
) -> dict[str, Any] | None:
    """Sample the test windows of the model's own protocol, write metrics.json and a record.

    `missing_ratio` (PhysioNet only): score on the protocol's hold-out at this ratio instead of
    the model's. Training never reads the hold-out (its conditioning masks are drawn at random
    inside the observed entries, as CSDI's), so one trained model serves every ratio; only the
    validation loss that picked the best weights saw the model's own ratio.

    The record's `elbo` holds the negative ELBO of the held-out values in nats per value with
    its prior / reconstruction / diffusion terms and standard error (`Imputer.elbo_normalised`,
    `elbo_time_samples` draws of the diffusion time per window; 0 skips it).

    `sampling_overrides`: SamplingConfig fields that replace the model's own (n_samples, …).
    `samples_output`: also write the samples of the first 8 test windows there (.npz, the
    format `csdi report --samples` draws bands from).

    `weights`: evaluate a training snapshot of the model instead of its best weights.
    `calibrated`: spread the samples by the model's spread calibration, when it has one
    (`Imputer.impute`).

    In a torchrun group (`distributed`) each rank samples a contiguous share of the windows
    with the seeds a single run would use (`Imputer.sample_sharded`), rank 0 scores and
    writes; the samples equal a single-process run's. Other ranks return None."""
    imputer = Imputer.load(model_dir, weights)
    imputer.distributed = distributed
    if device is not None:
        imputer.config = replace(imputer.config, train=replace(imputer.config.train, device=device))
    cfg = imputer.config
    if missing_ratio is not None:
        if cfg.data.dataset != "physionet":
            raise ValueError(
                f"a missing ratio other than the model's applies to physionet only; this model "
                f"was trained on {cfg.data.dataset!r}"
            )
        cfg = replace(cfg, data=replace(cfg.data, missing_ratio=missing_ratio))
    sampling = replace(cfg.sampling, **(sampling_overrides or {}))
    splits = load_splits(cfg.data, directory)
    if splits.test is None:
        raise ValueError(f"dataset {cfg.data.dataset!r} has no test protocol to evaluate on")
    test = splits.test
    if max_windows is not None:
        test = test.subset(np.arange(min(max_windows, len(test))))
    samples, seconds, calls = imputer.sample_sharded(test, sampling, progress=progress)
    if calibrated and imputer.spread is not None:
        samples = imputer.spread.apply(samples, test.observed if test.cond is None else test.cond)
    if not distributed.is_main:
        return None
    mean, std = metric_scale(splits)
    result = M.evaluate(samples, test.values, test.targets, scaler_mean=mean, scaler_std=std)
    bound = None
    if elbo_time_samples > 0:
        bound = imputer.elbo_normalised(
            test, n_time_samples=elbo_time_samples, seed=sampling.seed
        ).to_dict()
    if samples_output is not None:
        from csdi.evaluation import save_window_samples

        save_window_samples(samples_output, samples[:8], test, splits, "csdi")
    history = _history(model_dir / "last.pt")
    if weights is not None:  # a snapshot carries its own epoch and training time
        snapshot = checkpoint.load(Path(weights))
        if "epoch" in snapshot:
            history = {"epochs": [snapshot["epoch"]], "seconds": [snapshot["train_seconds"]]}
    record = make_record(
        dataset=cfg.data.dataset,
        protocol={**splits.protocol, "n_windows": len(test)},
        method="csdi",
        metrics=result,
        n_samples=sampling.n_samples,
        sampler=sampling.sampler,
        steps=sampling.steps,
        seed=sampling.seed,
        epochs=int(history["epochs"][-1]) if history else None,
        train_seconds=float(history["seconds"][-1]) if history else None,
        impute_seconds=seconds,
        device=device_description(str(imputer.device)),
        command=command,
        network_calls=calls,
        eta=sampling.eta if sampling.sampler == "ddim" else None,
        time_grid=sampling.time_grid,
        model_dir=portable(model_dir),
        weights=portable(weights) if weights is not None else "model.pt",
        units=splits.units,
        elbo=bound,
    )
    name = "metrics.json" if weights is None else f"metrics_{Path(weights).stem}.json"
    write_text_atomic(json.dumps(record, indent=2) + "\n", model_dir / name)
    if reports_dir is not None:
        append_record(reports_dir / cfg.name / "results.json", record)
    tracker = Tracker(cfg.name, enabled=track, run_name=f"evaluate {model_dir.name}")
    with tracker.run():
        tracker.log_params(
            {
                "model_dir": str(model_dir),
                **{f"sampling.{k}": v for k, v in to_dict(sampling).items()},
            }
        )
        tracker.log_metrics({k: v for k, v in result.items() if np.isfinite(v)})
        if bound is not None:
            tracker.log_metrics(
                {f"nelbo_{k}": float(v) for k, v in bound.items() if isinstance(v, float)}
            )
        tracker.log_artifact(model_dir / name)
    return record


def _history(path: Path) -> dict[str, Any] | None:
    """The per-epoch history stored in the resume checkpoint, if training left one."""
    if not path.is_file():
        return None
    history = checkpoint.load(path)["history"]
    return history if history["epochs"] else None
