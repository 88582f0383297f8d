"""`Imputer`: the task API — fit, impute, save, load (ARCHITECTURE §6).

Accepts numpy arrays (N, L, K) with NaN for missing, or a pandas frame (rows = time, columns =
features, NaN for missing) that is cut into windows and stitched back to its rows. Returns all
samples plus their median and quantiles, in the data's own units, with observed values untouched.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from csdi import checkpoint
from csdi.calibration import SpreadCalibration, fit_spread
from csdi.checkpoint import FORMAT_VERSION, CheckpointError
from csdi.config import (
    DataConfig,
    ExperimentConfig,
    SamplingConfig,
    from_dict,
    own_data_config,
    to_dict,
)
from csdi.data.masking import make_cond_mask
from csdi.data.scaling import (
    Scaler,
    ValueBounds,
    beyond_range_message,
    fit_bounds,
    fit_sensor_scaler,
)
from csdi.data.tabular import check_training_values, train_valid_windows
from csdi.data.windows import WindowSet, stitch, window_starts
from csdi.diffusion.prior import ResidualPrior
from csdi.diffusion.schedule import NoiseSchedule, get_schedule
from csdi.distributed import SINGLE, Distributed
from csdi.inference import (
    ElboSummary,
    Purification,
    elbo_windows,
    quantiles_of,
    sample_windows,
)
from csdi.nn.score_network import NetworkConfig, ScoreNetwork
from csdi.tracking import Tracker
from csdi.training import History, Trainer, resolve_device, save_training_state

log = logging.getLogger(__name__)

DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
CALIBRATION_SAMPLES = 16  # per validation window (csdi.calibration.ensemble_factor: any S)
# at most this many windows × features are sampled for the calibration (at least 8 windows):
# 64 windows of up to 8 columns, 14 of 36, so that a wide file's calibration costs no more
CALIBRATION_SERIES = 512


class InputError(ValueError):
    """Input data the imputer cannot use; the message names the problem."""


def _column_key(name: str) -> str:
    """A column name without case, spaces, hyphens or underscores, to spot a near-miss."""
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def feature_values(frame: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """The columns `names` of a frame as (T, K) float64, NaN missing. A missing column is
    refused with the frame's near-miss named (same letters up to case, spaces, `_` or `-`);
    a non-numeric one is refused too."""
    columns = [str(c) for c in frame.columns]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        keys = {_column_key(c): c for c in columns}
        near = [f"{keys[_column_key(c)]!r} for {c!r}" for c in missing if _column_key(c) in keys]
        hint = f" (the input has {', '.join(near)}: rename to match)" if near else ""
        raise InputError(
            f"input lacks the feature column(s) the model was trained on: {missing}{hint}"
        )
    sub = frame[list(names)]
    bad = [c for c in sub.columns if not pd.api.types.is_numeric_dtype(sub[c])]
    if bad:
        raise InputError(f"non-numeric feature column(s): {bad}")
    return sub.to_numpy(dtype=np.float64)  # (T, K)


@dataclass(frozen=True)
class Imputation:
    """samples (N, S, L, K); median (N, L, K); quantiles (Q, N, L, K) at `levels`; data units."""

    samples: np.ndarray
    median: np.ndarray
    quantiles: np.ndarray
    levels: tuple[float, ...]
    seconds: float
    network_calls: int


def quantile_columns(names: Sequence[str], levels: Sequence[float]) -> list[str]:
    """`<feature>_q<level>` for each level, then feature (the level written in full: 0.05,
    0.1234567); raises ValueError when one would have a feature's name (or another's)."""
    columns = [f"{n}_q{np.format_float_positional(q, trim='-')}" for q in levels for n in names]
    taken = set(names)
    for column in columns:
        if column in taken:
            raise ValueError(
                f"the quantile column {column!r} would have the name of a column already "
                "written (a feature, or a level given twice); rename the feature or choose "
                "other --quantiles"
            )
        taken.add(column)
    return columns


def quantile_frame(
    median: np.ndarray,
    quantiles: np.ndarray,
    levels: tuple[float, ...],
    index: pd.Index,
    names: list[str],
) -> pd.DataFrame:
    """One series' summary as a frame: the median (T, K) under the feature names, then the
    quantiles (Q, T, K) under `quantile_columns`."""
    data = np.concatenate([median, *quantiles], axis=1)  # (T, K + Q·K), as the column names
    return pd.DataFrame(data, index=index, columns=[*names, *quantile_columns(names, levels)])


def imputation_frame(result: Imputation, index: pd.Index, names: list[str]) -> pd.DataFrame:
    """A one-series imputation as a frame (observed values untouched), see `quantile_frame`."""
    return quantile_frame(result.median[0], result.quantiles[:, 0], result.levels, index, names)


def windows_from_array(
    values: np.ndarray, feature_names: tuple[str, ...] | None = None
) -> WindowSet:
    """(N, L, K) float array with NaN for missing → WindowSet (unscaled, cond = observed)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 3:
        raise InputError(f"expected an array shaped (N, L, K); got shape {arr.shape}")
    if np.isinf(arr).any():
        n, l_, k = np.argwhere(np.isinf(arr))[0]
        raise InputError(f"infinite value at window {n}, step {l_}, feature {k}")
    observed = ~np.isnan(arr)
    names = feature_names or tuple(f"x{k}" for k in range(arr.shape[2]))
    return WindowSet(
        values=np.where(observed, arr, 0.0).astype(np.float32),
        observed=observed,
        cond=observed,
        timestamps=np.broadcast_to(np.arange(arr.shape[1], dtype=np.float32), arr.shape[:2]).copy(),
        feature_names=names,
    )


def relative_time(w: WindowSet) -> WindowSet:
    """Time stamps measured from each window's first step, as the network was trained on."""
    return replace(w, timestamps=(w.timestamps - w.timestamps[:, :1]).astype(np.float32))


def normalise(w: WindowSet, scaler: Scaler) -> WindowSet:
    """Windows in model units: values scaled per feature, time measured from each window's start."""
    return relative_time(replace(w, values=scaler.transform(w.values, w.observed)))


def frame_splits(
    frame: pd.DataFrame, data: DataConfig, source: str | Path
) -> tuple[WindowSet, WindowSet | None, Scaler]:
    """A user's series (T rows × K features) for training: training and validation windows
    in model units (`train_valid_windows`) and the sensor scaler fitted on the training ones,
    after `check_training_values` (`source` names the data in its errors)."""
    train, valid = train_valid_windows(
        frame,
        window=data.window,
        stride=data.stride or 1,
        validation_fraction=data.validation_fraction,
    )
    scaler = fit_sensor_scaler(train.values, train.observed, log_transform=data.log_transform)
    check_training_values(source, frame, train, scaler)
    return (
        normalise(train, scaler),
        None if valid is None else normalise(valid, scaler),
        scaler,
    )


class Imputer:
    """Conditional score-based diffusion imputer (CSDI) with the configuration `config`
    (default: `own_data_config()`, the budget and settings `csdi train --data` uses)."""

    def __init__(
        self, config: ExperimentConfig | None = None, distributed: Distributed = SINGLE
    ) -> None:
        """`distributed`: this process's place in a torchrun group (`csdi.distributed`); in a
        group every rank trains its share and rank 0 alone writes files."""
        self.config = config or own_data_config()
        self.distributed = distributed
        self.network: ScoreNetwork | None = None
        self.schedule: NoiseSchedule = get_schedule(self.config.diffusion.schedule)
        self.scaler: Scaler | None = None
        self.bounds: ValueBounds | None = None  # model units; None: unbounded (older models)
        self.prior: ResidualPrior | None = None  # diffusion.prior_mean = "interpolation" only
        self.spread: SpreadCalibration | None = None  # train.calibration_windows > 0 only
        self.feature_names: tuple[str, ...] = ()
        self.history: History | None = None

    # ------------------------------------------------------------------ building
    def _build(self, n_features: int) -> ScoreNetwork:
        net_cfg = NetworkConfig(n_features=n_features, **dataclasses.asdict(self.config.model))
        return ScoreNetwork(net_cfg)

    @property
    def device(self) -> torch.device:
        device = resolve_device(self.config.train.device)
        if self.distributed.enabled and device.type == "cuda":
            return torch.device("cuda", self.distributed.local_rank)
        return device

    def _require_fitted(self) -> ScoreNetwork:
        if self.network is None or self.scaler is None:
            raise RuntimeError("this Imputer is not fitted: call fit() or Imputer.load() first")
        return self.network

    # ------------------------------------------------------------------ training
    def fit_windows(
        self,
        train: WindowSet,
        valid: WindowSet | None,
        scaler: Scaler,
        *,
        output_dir: Path | None = None,
        resume: bool = False,
        tracker: Tracker | None = None,
        progress: bool = True,
        patterns: np.ndarray | None = None,
    ) -> History:
        """Train on windows already in normalised units (the protocol loaders give those).

        `patterns` (P, L, K) bool: missingness patterns for historical/mix masking (default: the
        training windows' own). The forecast mask hides the last `config.data.horizon` steps.

        With `output_dir`, every epoch writes `last.pt` (resume state) and, when the validation
        loss improves, the best EMA weights as the saved model.
        """
        torch.manual_seed(self.config.train.seed)  # parameter initialisation only
        self.scaler = scaler
        # the range of every row the user gave: the validation rows (the file's latest) too
        seen = [train] if valid is None else [train, valid]
        k = train.values.shape[-1]
        self.bounds = fit_bounds(
            np.concatenate([w.values.reshape(-1, k) for w in seen]),
            np.concatenate([w.observed.reshape(-1, k) for w in seen]),
            scaler,
        )
        self.feature_names = train.feature_names
        self.network = self._build(len(train.feature_names))
        self.schedule = get_schedule(self.config.diffusion.schedule)
        trainer = Trainer(
            self.network,
            self.schedule,
            self.config.train,
            self.config.diffusion,
            self.device,
            horizon=self.config.data.horizon,
            distributed=self.distributed,
        )
        last = output_dir / "last.pt" if output_dir is not None else None
        best = output_dir / "model.pt" if output_dir is not None else None
        if not self.distributed.is_main:
            output_dir = None  # rank 0 alone writes the model directory
        for folder in [] if output_dir is None else [output_dir, output_dir / "snapshots"]:
            for stale in checkpoint.remove_stale_temporaries(folder):
                log.info("removed %s, left by an interrupted write", stale)
        if resume and last is not None and last.is_file():
            trainer.load_state_dict(checkpoint.load(last, map_location=self.device))
            log.info("resumed from %s at epoch %d", last, trainer.epoch)
        tracker = tracker or Tracker(self.config.name, enabled=False)

        def on_epoch(tr: Trainer, train_loss: float, valid_loss: float) -> None:
            tracker.log_metrics(
                {
                    "train_loss": train_loss,
                    "valid_loss": valid_loss,
                    "lr": tr.optimizer.param_groups[0]["lr"],
                    "train_seconds": tr.history.seconds[-1],
                },
                step=tr.epoch,
            )
            self.prior = tr.prior  # fitted at the start of trainer.fit; saved with the model
            if output_dir is None:
                return
            if tr.history.best_epoch == tr.epoch:
                self._save_model(output_dir, tr)
            every = self.config.train.snapshot_every
            if every is not None and tr.epoch % every == 0:
                self._save_snapshot(tr, output_dir / "snapshots" / f"epoch_{tr.epoch:04d}.pt")
            save_training_state(tr, last)  # type: ignore[arg-type]

        def on_mark(tr: Trainer, minutes: float) -> None:
            if output_dir is not None:
                self._save_snapshot(tr, output_dir / "snapshots" / f"minutes_{minutes:g}.pt")

        self.history = trainer.fit(
            train, valid, on_epoch=on_epoch, on_mark=on_mark, progress=progress, patterns=patterns
        )
        self.prior = trainer.prior
        self.distributed.barrier()  # rank 0 has written model.pt: every rank takes the same weights
        if best is not None and best.is_file():
            self._load_weights(best)  # the best-validation EMA weights
        else:
            self.network.load_state_dict(trainer.ema.module.state_dict())
            self.schedule.load_state_dict(trainer.averaged_schedule.state_dict())
        self.spread = None
        if valid is not None and self.config.train.calibration_windows > 0:
            self.spread = self.calibrate_spread(valid, patterns)
            if output_dir is not None:  # rank 0: the model directory gains the factors
                self._write_meta(output_dir)
        return self.history

    def calibrate_spread(
        self, valid: WindowSet, patterns: np.ndarray | None = None
    ) -> SpreadCalibration | None:
        """Fit the spread calibration (`csdi.calibration`) on validation windows in model
        units: up to `train.calibration_windows` of them (fewer for a wide file, at most
        `CALIBRATION_SERIES` windows × features), evenly spread, each given the training mask
        (for a forecaster, the history) and sampled `CALIBRATION_SAMPLES` times; an imputer's
        windows are repeated with fresh masks until there are that many. None (and a log
        line) when the windows hold too few values to score."""
        width = valid.values.shape[2]
        wanted = min(self.config.train.calibration_windows, max(8, CALIBRATION_SERIES // width))
        horizon = self.config.data.horizon
        n = len(valid)
        repeats = 1 if horizon is not None else -(-wanted // n)
        picked = np.unique(np.linspace(0, n - 1, min(n, wanted)).round().astype(int))
        chosen = valid.subset(np.tile(picked, repeats))
        observed = torch.from_numpy(chosen.observed.transpose(0, 2, 1).copy())  # (B, K, L)
        strategy = "forecast" if horizon is not None else self.config.train.masking
        known = None if patterns is None else torch.from_numpy(patterns.transpose(0, 2, 1).copy())
        generator = torch.Generator().manual_seed(self.config.train.seed)
        cond = make_cond_mask(strategy, observed, generator, patterns=known, horizon=horizon)
        given = cond.numpy().transpose(0, 2, 1).astype(bool)  # (B, L, K)
        windows = replace(chosen, cond=given)
        sampling = replace(self.config.sampling, n_samples=CALIBRATION_SAMPLES, seed=1)
        samples, seconds, _ = self.sample_sharded(windows, sampling)
        target = windows.observed & ~given
        spread = fit_spread(samples, windows.values, target, horizon)
        if spread is None:
            log.info("spread not calibrated: %d validation values to score", int(target.sum()))
        else:
            log.info(
                "spread calibrated on %d validation windows in %.0f s: level per feature %s, "
                "slope over the horizon %.2f",
                len(windows),
                seconds,
                spread.level.round(2).tolist(),
                spread.slope,
            )
        return spread

    def fit(
        self,
        data: np.ndarray | pd.DataFrame,
        *,
        valid: np.ndarray | None = None,
        output_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
    ) -> Imputer:
        """Fit on an array (N, L, K) with NaN, or a frame (rows = time) cut into windows.

        With `output_dir`, checkpoints go there; `resume` continues from its `last.pt`."""
        if isinstance(data, pd.DataFrame):
            train, valid_n, scaler = frame_splits(data, self.config.data, "the training frame")
        else:
            train_w = replace(windows_from_array(data), cond=None)
            valid_w = replace(windows_from_array(valid), cond=None) if valid is not None else None
            scaler = fit_sensor_scaler(
                train_w.values, train_w.observed, log_transform=self.config.data.log_transform
            )
            train = normalise(train_w, scaler)
            valid_n = None if valid_w is None else normalise(valid_w, scaler)
        self.fit_windows(
            train,
            valid_n,
            scaler,
            output_dir=Path(output_dir) if output_dir else None,
            resume=resume,
            progress=progress,
        )
        return self

    # ------------------------------------------------------------------ imputation
    def sample_normalised(
        self,
        windows: WindowSet,
        sampling: SamplingConfig | None = None,
        *,
        progress: bool = False,
        purify: Purification | None = None,
        first_window: int = 0,
        bounds: ValueBounds | None = None,
    ) -> tuple[np.ndarray, float, int]:
        """Samples (N, S, L, K) in normalised units given `windows.cond` (default: observed);
        with `purify` those entries are noisy observations to purify. `first_window`:
        the index of the first window in the whole set (a shard's offset; its seeds follow).
        `bounds`: the range x̂₀ is clipped to (None: the training range, `self.bounds`)."""
        network = self._require_fitted()
        cfg = sampling or self.config.sampling
        cond = windows.observed if windows.cond is None else windows.cond
        res = sample_windows(
            network.to(self.device),
            self.schedule.to(self.device),
            windows.values,
            cond,
            relative_time(windows).timestamps,
            cfg,
            self.device,
            progress=progress,
            bounds=self.bounds if bounds is None else bounds,
            purify=purify,
            first_window=first_window,
            prior=self.prior,
        )
        return res.samples, res.seconds, res.network_calls

    def sample_sharded(
        self,
        windows: WindowSet,
        sampling: SamplingConfig | None = None,
        *,
        progress: bool = False,
        purify: Purification | None = None,
        bounds: ValueBounds | None = None,
    ) -> tuple[np.ndarray, float, int]:
        """`sample_normalised` of all windows, split over the ranks of a torchrun group
        (`self.distributed`): each rank samples a contiguous share with the seeds one process
        would use (`WindowNoise`), and every rank gets all samples in window order, the same
        as one process's (to the rounding of other batch compositions). Seconds: the slowest
        rank's; network calls: all ranks'."""
        group = self.distributed
        if not group.enabled:
            return self.sample_normalised(
                windows, sampling, progress=progress, purify=purify, bounds=bounds
            )
        mine = group.shard(len(windows))
        part = self.sample_normalised(
            windows.subset(mine),
            sampling,
            progress=progress and group.is_main,
            purify=purify,
            first_window=int(mine[0]) if len(mine) else 0,
            bounds=bounds,
        )
        parts = [p for p in group.all_gather(part) if isinstance(p, tuple)]
        samples = np.concatenate([p[0] for p in parts])  # (N, S, L, K)
        return samples, max(p[1] for p in parts), sum(p[2] for p in parts)

    def elbo_normalised(
        self, windows: WindowSet, *, n_time_samples: int = 16, seed: int = 0
    ) -> ElboSummary:
        """−ELBO in nats per value of the held-out targets (observed & ~cond) given `cond`."""
        network = self._require_fitted()
        if windows.cond is None:
            raise ValueError("the ELBO needs windows with a cond mask (the protocol's test split)")
        return elbo_windows(
            network,
            self.schedule,
            windows.values,
            windows.cond & windows.observed,
            windows.targets,
            relative_time(windows).timestamps,
            self.device,
            n_time_samples=n_time_samples,
            seed=seed,
            prior=self.prior,
        )

    def impute(
        self,
        data: np.ndarray | pd.DataFrame,
        *,
        n_samples: int | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int | None = None,
        quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
        progress: bool = False,
        time_grid: str | None = None,
        eta: float | None = None,
        chunk_size: int | None = None,
        precision: str | None = None,
        clip: bool | None = None,
        compile: bool | None = None,
        denoise: float | np.ndarray | None = None,
        denoise_start: float = 1.0,
        calibrated: bool = True,
    ) -> Imputation:
        """Impute every missing entry; observed entries are returned exactly as given.

        Array input (N, L, K) → samples (N, S, L, K). Frame input (T rows, K columns) →
        samples (1, S, T, K): the frame is cut into overlapping windows of the training length and
        each row is taken from one window (`csdi.data.windows.stitch`). `sampler`, `steps`,
        `seed`, `time_grid` (`csdi.diffusion.samplers.make_time_grid`), `eta` (ddim only),
        `chunk_size` (rows per network call), `precision` of the network calls ("fp32" or
        "bf16", `csdi.nn.precision`), `clip` (keep x̂₀ inside the value bounds learned in
        training) and `compile` (the network through `torch.compile`) default to the config's.

        `denoise` (purification): the observed values carry Gaussian noise of this standard
        deviation (data units; one number, or one per feature); they are sampled too, from
        the model's posterior given the noisy values (`csdi.diffusion.samplers.NoisyValues`,
        ancestral sampler, 50 steps unless given), instead of being returned as given. Needs
        linearly scaled features. `denoise_start` ≥ 1: the reverse process takes the noisy
        values up at this multiple of their noise level (1: matched, exact for Gaussian noise
        of the stated size; more: a randomised start with extra injected noise, as Yoon et al.
        2021 purify, robust to outliers and understated noise but smoother).

        `calibrated`: spread the samples by the factors fitted on the validation windows at
        training (`csdi.calibration`), when the model has them; False: as the sampler drew
        them. Purification's samples are never rescaled.
        """
        self._require_fitted()
        assert self.scaler is not None
        overrides: dict[str, Any] = {
            k: v
            for k, v in {
                "n_samples": n_samples,
                "sampler": sampler,
                "steps": steps,
                "seed": seed,
                "time_grid": time_grid,
                "eta": eta,
                "chunk_size": chunk_size,
                "precision": precision,
                "clip": clip,
                "compile": compile,
            }.items()
            if v is not None
        }
        if denoise is not None and sampler is None:  # purification runs on the ancestral sampler
            overrides.update(
                sampler="ancestral", steps=steps or 50, time_grid=time_grid or "uniform"
            )
        cfg = replace(self.config.sampling, **overrides)
        if denoise is not None and not (np.isfinite(denoise_start) and denoise_start >= 1.0):
            raise InputError(f"denoise start must be a number of at least 1, got {denoise_start}")
        purify = (
            None
            if denoise is None
            else Purification(self._noise_in_model_units(denoise, cfg), denoise_start)
        )
        if isinstance(data, pd.DataFrame):
            raw = feature_values(data, self.feature_names)[None]  # (1, T, K)
        else:
            raw = np.asarray(data, dtype=np.float64)
        self._check_range(raw, data.index if isinstance(data, pd.DataFrame) else None)
        windows = windows_from_array(raw, self.feature_names or None)
        if windows.values.shape[2] != len(self.feature_names):
            raise InputError(
                f"the model was trained on {len(self.feature_names)} features; "
                f"the input has {windows.values.shape[2]}"
            )
        scaled = replace(windows, values=self.scaler.transform(windows.values, windows.observed))
        bounds = (  # the training range, and the input's own where it drifts beyond it
            None
            if self.bounds is None
            else self.bounds.covering(scaled.values, scaled.observed, self.scaler)
        )
        spread = self.spread if calibrated and purify is None else None
        if isinstance(data, pd.DataFrame):
            samples, seconds, calls = self._impute_series(scaled, cfg, purify, bounds, spread)
        else:
            samples, seconds, calls = self.sample_sharded(
                scaled, cfg, progress=progress, purify=purify, bounds=bounds
            )
            if spread is not None:
                samples = spread.apply(samples, scaled.observed)
        values = self.scaler.inverse(samples)  # (N, S, L, K) data units
        if bounds is not None and cfg.clip:  # exact in data units (0 stays 0)
            values = bounds.clip_data(values)
        if purify is None:
            observed = windows.observed[:, None]
            values = np.where(observed, raw[:, None], values)  # observed entries bit-exact
        qs = quantiles_of(values, quantiles)
        return Imputation(
            samples=values,
            median=np.median(values, axis=1),
            quantiles=qs,
            levels=tuple(quantiles),
            seconds=seconds,
            network_calls=calls,
        )

    def _check_range(self, raw: np.ndarray, index: pd.Index | None) -> None:
        """Refuse an observed value of raw (N, L, K) that scales beyond what the network's
        32-bit arithmetic holds (`Scaler.first_beyond_range`): it would come back as NaN.
        `index`: the frame's row labels, to name the row (N = 1)."""
        assert self.scaler is not None
        if raw.ndim != 3 or raw.shape[-1] != len(self.scaler.mean):
            return  # the shape checks that follow say what is wrong
        hit = self.scaler.first_beyond_range(raw, np.isfinite(raw))  # inf: windows_from_array
        if hit is None:
            return
        n, step, k = hit
        name = self.feature_names[k] if self.feature_names else f"x{k}"
        where = f"at {index[step]}" if index is not None else f"at window {n}, step {step}"
        raise InputError(beyond_range_message(name, raw[n, step, k], where))

    def _noise_in_model_units(self, denoise: float | np.ndarray, cfg: SamplingConfig) -> np.ndarray:
        """The noise standard deviation (K,) in normalised units, checked."""
        assert self.scaler is not None
        k = len(self.scaler.std)
        std = np.asarray(denoise, dtype=np.float64)
        if std.ndim == 0:  # one level for every feature
            std = np.full(k, float(std))
        if std.shape != (k,) or not np.all(np.isfinite(std)) or np.any(std <= 0):
            raise InputError(f"denoise must be one positive number or {k} (one per feature)")
        if cfg.sampler != "ancestral":
            raise InputError(f"denoise runs on the ancestral sampler, not {cfg.sampler!r}")
        logged = self.scaler.log_scale
        if logged is not None and np.any(logged > 0):
            names = [n for n, c in zip(self.feature_names, logged, strict=True) if c > 0]
            raise InputError(
                f"denoise needs linearly scaled features; {names} were log-transformed "
                "(train with --set data.log_transform=none)"
            )
        return std / self.scaler.std

    def _impute_series(
        self,
        one: WindowSet,
        cfg: SamplingConfig,
        purify: Purification | None = None,
        bounds: ValueBounds | None = None,
        spread: SpreadCalibration | None = None,
    ) -> tuple[np.ndarray, float, int]:
        """One long series (1, T, K) → samples (1, S, T, K) window by window, each window's
        spread calibrated by `spread` (when given), stitched."""
        n_rows = one.values.shape[1]
        length = min(self.config.data.window, n_rows)
        starts = window_starts(n_rows, length, stitch_stride(length))
        idx = starts[:, None] + np.arange(length)  # (N, L)
        windows = WindowSet(
            values=one.values[0][idx],
            observed=one.observed[0][idx],
            cond=one.observed[0][idx],
            timestamps=np.broadcast_to(np.arange(length, dtype=np.float32), idx.shape).copy(),
            feature_names=one.feature_names,
        )
        samples, seconds, calls = self.sample_sharded(windows, cfg, purify=purify, bounds=bounds)
        if spread is not None:
            samples = spread.apply(samples, windows.observed)
        return stitch(samples, starts, n_rows)[None], seconds, calls  # (1, S, T, K)

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict[str, Any]:
        assert self.scaler is not None
        return {
            "format_version": FORMAT_VERSION,
            "config": to_dict(self.config),
            "feature_names": list(self.feature_names),
            "scaler": self.scaler.to_dict(),
            "bounds": None if self.bounds is None else self.bounds.to_dict(),
            "prior_scale": None if self.prior is None else self.prior.scale.tolist(),
            "prior_period": None
            if self.prior is None or self.prior.period is None
            else self.prior.period.tolist(),
            "spread": None if self.spread is None else self.spread.to_dict(),
        }

    def _save_snapshot(self, trainer: Trainer, path: Path) -> None:
        """The EMA weights as they are now, for CRPS-against-time curves (`--weights`)."""
        checkpoint.save_atomic(
            {
                "network": trainer.ema.module.state_dict(),
                "schedule": trainer.averaged_schedule.state_dict(),
                "epoch": trainer.epoch,
                "step": trainer.step,
                "train_seconds": trainer.seconds,
            },
            path,
        )

    def _save_model(self, directory: Path, trainer: Trainer | None = None) -> None:
        network = trainer.ema.module if trainer is not None else self._require_fitted()
        schedule = trainer.averaged_schedule if trainer is not None else self.schedule
        checkpoint.save_atomic(
            {"network": network.state_dict(), "schedule": schedule.state_dict()},
            directory / "model.pt",
        )
        self._write_meta(directory)

    def _write_meta(self, directory: Path) -> None:
        """config.json of the model directory: config, features, scaler, bounds, prior, spread."""
        checkpoint.write_text_atomic(json.dumps(self._meta(), indent=2), directory / "config.json")

    def save(self, directory: str | Path) -> Path:
        """Write config.json (config, features, scaler, format version) and model.pt."""
        path = Path(directory)
        self._require_fitted()
        self._save_model(path)
        return path

    def _load_weights(self, path: Path) -> None:
        state = checkpoint.load(path)
        assert self.network is not None
        try:
            self.network.load_state_dict(state["network"])
            self.schedule.load_state_dict(state["schedule"])
        except (KeyError, RuntimeError) as e:
            raise CheckpointError(
                f"{path}: weights do not match the configuration in config.json"
            ) from e

    @classmethod
    def load(cls, directory: str | Path, weights: str | Path | None = None) -> Imputer:
        """Read a model directory written by `save` (or by training with an output dir);
        `weights` picks another weights file of it (e.g. a training snapshot) over model.pt."""
        path = Path(directory)
        meta_path = path / "config.json"
        if not path.exists():
            raise CheckpointError(f"model directory not found: {path}")
        if not meta_path.is_file():
            raise CheckpointError(f"not a csdi model directory (no config.json): {path}")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{meta_path}: not valid JSON ({e.msg})") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"{meta_path}: not a csdi model's config (not a JSON object)")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"{path} was written by csdi model format {version}; "
                f"this version reads format {FORMAT_VERSION}"
            )
        try:
            imputer = cls(from_dict(ExperimentConfig, meta["config"]))
            imputer.feature_names = tuple(meta["feature_names"])
            imputer.scaler = Scaler.from_dict(meta["scaler"])
        except (KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(
                f"{meta_path}: not a csdi model's config ({type(e).__name__}: {e})"
            ) from None
        bounds = meta.get("bounds")
        try:
            imputer.bounds = None if bounds is None else ValueBounds.from_dict(bounds)
        except (TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{meta_path}: unreadable value bounds ({e})") from None
        imputer.prior = _prior_from_meta(meta, imputer.config, meta_path)
        imputer.spread = _spread_from_meta(meta, imputer.config, meta_path)
        imputer.network = imputer._build(len(imputer.feature_names))
        imputer._load_weights(Path(weights) if weights is not None else path / "model.pt")
        return imputer


def stitch_stride(length: int) -> int:
    """Rows between the starts of the windows a long series is cut into: three quarters of a
    window, so every row is taken at least L/8 steps from its window's edges (series ends
    aside): 1.4× faster than half a window at the same CRPS, where a whole window (rows at the
    edges) loses accuracy (reports/own_data/stitch_stride.md)."""
    return max(1, (3 * length) // 4)


def _prior_from_meta(
    meta: dict[str, Any], config: ExperimentConfig, meta_path: Path
) -> ResidualPrior | None:
    """The residual prior a model directory's config.json stores, checked against its config."""
    scale = meta.get("prior_scale")
    wanted = config.diffusion.prior_mean == "interpolation"
    if wanted != (scale is not None):
        raise CheckpointError(
            f"{meta_path}: diffusion.prior_mean is {config.diffusion.prior_mean!r} but the "
            f"residual scale is {'missing' if scale is None else 'present'}"
        )
    if scale is None:
        return None
    period = meta.get("prior_period")  # absent in models saved before seasons existed
    try:
        prior = ResidualPrior(
            torch.tensor(scale, dtype=torch.float32),
            None if period is None else torch.tensor(period),  # a non-integer is refused
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{meta_path}: unreadable residual prior ({e})") from None
    if len(prior.scale) != len(meta["feature_names"]):
        raise CheckpointError(
            f"{meta_path}: {len(prior.scale)} residual scales for "
            f"{len(meta['feature_names'])} features"
        )
    return prior


def _spread_from_meta(
    meta: dict[str, Any], config: ExperimentConfig, meta_path: Path
) -> SpreadCalibration | None:
    """The spread calibration a model directory's config.json stores (absent in older models
    and in models trained without one), checked against the features and the horizon."""
    stored = meta.get("spread")
    if stored is None:
        return None
    try:
        spread = SpreadCalibration.from_dict(stored)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{meta_path}: unreadable spread calibration ({e})") from None
    if len(spread.level) != len(meta["feature_names"]) or spread.horizon != config.data.horizon:
        raise CheckpointError(
            f"{meta_path}: a spread calibration for {len(spread.level)} features and horizon "
            f"{spread.horizon}, in a model of {len(meta['feature_names'])} features and horizon "
            f"{config.data.horizon}"
        )
    return spread
