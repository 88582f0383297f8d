"""`Forecaster`: probabilistic forecasting as imputation with the future masked (CSDI §6.3).

A window is `context` steps of history followed by `horizon` steps to forecast. Training hides
the last `horizon` steps of each window (the "forecast" mask) and learns to impute them from
the history; forecasting appends `horizon` empty rows to the last `context` rows of a history
and samples them. Built on `Imputer` (same network, checkpoints and samplers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csdi import metrics as M
from csdi.baselines import run_baseline
from csdi.checkpoint import CheckpointError
from csdi.config import DataConfig, ExperimentConfig
from csdi.data.forecasting import DEFAULT_CONTEXT, forecast_windows
from csdi.data.scaling import Scaler, fit_scaler
from csdi.data.windows import WindowSet
from csdi.imputer import DEFAULT_QUANTILES, Imputer, InputError, feature_values
from csdi.inference import quantiles_of
from csdi.training import History

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Forecast:
    """samples (N, S, H, K); median (N, H, K); quantiles (Q, N, H, K) at `levels`; data units."""

    samples: np.ndarray
    median: np.ndarray
    quantiles: np.ndarray
    levels: tuple[float, ...]
    seconds: float
    network_calls: int


def _as_series(data: np.ndarray | pd.DataFrame, names: tuple[str, ...] | None) -> np.ndarray:
    """A frame (T rows × K columns) or array (T, K) / (N, T, K), NaN missing → (N, T, K)."""
    if isinstance(data, pd.DataFrame):
        arr = feature_values(data, list(data.columns) if names is None else names)[None]
    else:
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr[None]  # (1, T, K)
    if arr.ndim != 3:
        raise InputError(f"expected a series (T, K) or series (N, T, K); got shape {arr.shape}")
    if np.isinf(arr).any():
        n, t, k = np.argwhere(np.isinf(arr))[0]
        raise InputError(f"infinite value in series {n}, step {t}, feature {k}")
    return arr


def default_context(horizon: int) -> int:
    """History steps a forecaster sees when none are given: three horizons."""
    return 3 * horizon


def forecast_splits(
    series: np.ndarray,
    names: tuple[str, ...],
    context: int,
    horizon: int,
    data: DataConfig,
    fit: Callable[[np.ndarray, np.ndarray], Scaler],
) -> tuple[WindowSet, WindowSet | None, Scaler]:
    """Training and validation windows of context + horizon steps from series (N, T, K), NaN
    missing, in the units of the scaler `fit(values, observed)` fitted on the training rows.

    Training windows end every `data.stride` rows (default 1); the last
    `data.validation_fraction` of each series' rows are the targets of validation windows
    (ending every quarter horizon, so that the best weights and the spread calibration are
    chosen on more than a few windows), none when that is under one horizon.
    """
    length, stride = context + horizon, data.stride or 1
    n_rows = series.shape[1]
    n_valid = round(n_rows * data.validation_fraction)
    n_valid = n_valid if n_valid >= horizon else 0
    train_end = n_rows - n_valid
    if train_end < length:
        raise InputError(
            f"the series has {train_end} training rows; a window needs {length} "
            f"(context {context} + horizon {horizon})"
        )
    scaler = fit(series[:, :train_end], ~np.isnan(series[:, :train_end]))
    train_ends = np.arange(train_end, length - 1, -stride)[::-1]
    valid_stride = max(1, horizon // 4)  # four times the windows of a horizon's stride
    valid_ends = np.arange(n_rows, train_end + horizon - 1, -valid_stride)[::-1]
    train_parts, valid_parts = [], []
    for one in series:  # (T, K)
        observed = ~np.isnan(one)
        scaled = np.where(observed, scaler.transform(one, observed), np.nan)
        train_parts.append(
            forecast_windows(scaled, train_ends, context, horizon, names, with_cond=False)
        )
        if n_valid:
            valid_parts.append(
                forecast_windows(scaled, valid_ends, context, horizon, names, with_cond=True)
            )
    return _concat(train_parts), _concat(valid_parts) if valid_parts else None, scaler


class Forecaster:
    """Forecasts `horizon` steps from `context` steps of history with a CSDI imputer.

    `horizon`/`context` default to `config.data.horizon`/`config.data.context`; a missing
    context defaults to three horizons. Training uses the forecast mask, or with
    `train.masking = "forecast_mix"` the forecast mask for half the windows and random gaps for
    the other half.
    """

    def __init__(
        self,
        config: ExperimentConfig | None = None,
        *,
        horizon: int | None = None,
        context: int | None = None,
    ):
        cfg = config or ExperimentConfig()
        horizon = horizon or cfg.data.horizon
        if horizon is None or horizon < 1:
            raise ValueError("a Forecaster needs a horizon ≥ 1 (argument or data.horizon)")
        context = context or cfg.data.context or default_context(horizon)
        if context < 1:
            raise ValueError(f"context must be ≥ 1; got {context}")
        self.horizon = horizon
        self.context = context
        data = replace(cfg.data, horizon=horizon, context=context, window=context + horizon)
        # train.masking = "forecast_mix" also trains on random gaps; anything else → "forecast"
        masking = "forecast_mix" if cfg.train.masking == "forecast_mix" else "forecast"
        self.imputer = Imputer(replace(cfg, data=data, train=replace(cfg.train, masking=masking)))

    @property
    def config(self) -> ExperimentConfig:
        return self.imputer.config

    @property
    def history(self) -> History | None:
        return self.imputer.history

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data: np.ndarray | pd.DataFrame,
        *,
        output_dir: str | Path | None = None,
        progress: bool = True,
    ) -> Forecaster:
        """Fit on one series (frame or (T, K) array) or several (N, T, K), NaN missing.

        Windows of context + horizon steps every `data.stride` rows (default 1). The last
        `data.validation_fraction` of each series' rows are the targets of validation windows
        (every quarter horizon); training windows and the scaler use only the rows before them.
        """
        series = _as_series(data, None)
        names = (
            tuple(str(c) for c in data.columns)
            if isinstance(data, pd.DataFrame)
            else tuple(f"x{k}" for k in range(series.shape[2]))
        )
        train, valid, scaler = forecast_splits(
            series, names, self.context, self.horizon, self.config.data, fit_scaler
        )
        self.imputer.fit_windows(
            train,
            valid,
            scaler,
            output_dir=Path(output_dir) if output_dir is not None else None,
            progress=progress,
        )
        return self

    # ------------------------------------------------------------------ forecasting
    def forecast(
        self,
        history: np.ndarray | pd.DataFrame,
        *,
        horizon: int | None = None,
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
        calibrated: bool = True,
    ) -> Forecast:
        """Samples of the `horizon` steps after each history ((T, K), frame, or (N, T, K)).

        The last `context` rows are used (a shorter history is padded with missing rows); the
        model always samples its trained horizon and the first `horizon` steps are returned.
        `calibrated`: as `Imputer.impute`'s.
        """
        h = self.horizon if horizon is None else horizon
        if not 1 <= h <= self.horizon:
            raise InputError(
                f"horizon must be in [1, {self.horizon}] (the trained horizon); got {h}"
            )
        names = self.imputer.feature_names or None
        series = _as_series(history, names)
        n, t, k = series.shape
        if t == 0:
            raise InputError("the history has no rows")
        pad = max(0, self.context - t)
        window = np.full((n, self.context + self.horizon, k), np.nan)  # (N, C + H, K)
        window[:, pad : self.context] = series[:, t - (self.context - pad) :]
        blind = np.flatnonzero(np.isnan(window).all(axis=(1, 2)))
        if blind.size:
            log.warning(
                "%d of %d histories have no value in their last %d rows: those forecasts come "
                "from the training data's range alone",
                blind.size,
                n,
                self.context,
            )
        result = self.imputer.impute(
            window,
            n_samples=n_samples,
            sampler=sampler,
            steps=steps,
            seed=seed,
            quantiles=quantiles,
            progress=progress,
            time_grid=time_grid,
            eta=eta,
            chunk_size=chunk_size,
            precision=precision,
            clip=clip,
            compile=compile,
            calibrated=calibrated,
        )
        samples = result.samples[:, :, self.context : self.context + h]  # (N, S, h, K)
        return Forecast(
            samples=samples,
            median=np.median(samples, axis=1),
            quantiles=quantiles_of(samples, quantiles),
            levels=tuple(quantiles),
            seconds=result.seconds,
            network_calls=result.network_calls,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write the model directory (as `Imputer.save`; horizon and context in its config)."""
        return self.imputer.save(directory)

    @classmethod
    def load(cls, directory: str | Path) -> Forecaster:
        """Read a forecasting model directory (saved here, or trained with `csdi train`)."""
        imputer = Imputer.load(directory)
        data = imputer.config.data
        if data.horizon is None:
            raise CheckpointError(
                f"{directory} holds an imputation model, not a forecaster (no data.horizon)"
            )
        context = data.context or DEFAULT_CONTEXT.get(data.dataset) or data.window - data.horizon
        forecaster = cls.__new__(cls)
        forecaster.horizon, forecaster.context = data.horizon, context
        forecaster.imputer = imputer
        return forecaster


def _concat(parts: list[WindowSet]) -> WindowSet:
    """Windows of several WindowSets in order (same L, K and feature names)."""
    conds = [p.cond for p in parts if p.cond is not None]
    cond = np.concatenate(conds) if len(conds) == len(parts) else None
    return WindowSet(
        values=np.concatenate([p.values for p in parts]),
        observed=np.concatenate([p.observed for p in parts]),
        cond=cond,
        timestamps=np.concatenate([p.timestamps for p in parts]),
        feature_names=parts[0].feature_names,
    )


def seasonal_naive_metrics(
    data: DataConfig, *, season: int, directory: Path | None = None
) -> dict[str, Any]:
    """Metrics of the seasonal-naive forecast on a forecasting dataset's test windows.

    The history's last `season` steps repeated over the horizon (`baselines.seasonal_naive`;
    one sample, so its CRPS is its MAE), in the protocol's units as `evaluate_model` reports.
    """
    from csdi.experiment import load_splits

    splits = load_splits(data, directory)
    test = splits.test
    if test is None or test.cond is None:
        raise ValueError(f"dataset {data.dataset!r} has no forecasting test protocol")
    horizon = int(splits.protocol["horizon"])
    visible = np.where(test.cond, test.values, np.nan)  # (N, L, K), future hidden
    samples = run_baseline(
        "seasonal_naive",
        visible,
        n_samples=1,
        rng=np.random.default_rng(0),
        season=season,
        horizon=horizon,
    )  # (N, 1, L, K)
    mean, std = (
        (0.0, 1.0) if splits.units == "normalised" else (splits.scaler.mean, splits.scaler.std)
    )
    return M.evaluate(samples, test.values, test.targets, scaler_mean=mean, scaler_std=std)
