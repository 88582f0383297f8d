"""Beijing PM2.5, 36 stations (STMVL), under CSDI's imputation protocol (Tashiro et al. 2021).

Follows the reference (ermongroup/CSDI, dataset_pm25.py):
- `pm25_ground` holds the observed values; `pm25_missing` is the same file with real missing
  patterns added. The model is given the observed values of `pm25_missing` (the test `cond`);
  the evaluation targets are entries observed in `pm25_ground` but missing in `pm25_missing`.
- Test months 3, 6, 9, 12; validation month = month `validindex` of the training months
  [1, 2, 4, 5, 7, 8, 10, 11] (CSDI's `validindex`, default 0 → month 1); training = the rest.
  Training and validation windows see the ground-truth observations of their months, as the
  reference's do; windows never cross a month boundary.
- Windows of 36 steps: stride 1 in training and validation; in test, non-overlapping windows
  from each month's first row, plus, when 36 does not divide the month, one window aligned to
  the month's last row whose first `36 − len % 36` steps the reference excludes from evaluation
  (`cut_length`). Here those steps keep their `cond` values (the model sees exactly what it sees
  in the reference) and their targets are marked unobserved, so every target of the test months
  is evaluated exactly once.
- Normalisation: per-station mean and sample std (ddof 1, pandas `describe`) of `pm25_ground`
  over the training months 1, 2, 4, 5, 7, 8, 10, 11, read from `pm25_train_meanstd.csv`.
- Historical patterns for "mix"/"historical" masking: the ground-truth observed masks of the
  training windows in months 2, 5, 8, 11. The reference keeps months 1, 4, 7, 10 out of them
  because their patterns made the test months' missing file; patterns are drawn uniformly here
  (the reference pairs each window with the next eligible one, which favours month starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from csdi.data.errors import DataError
from csdi.data.scaling import Scaler
from csdi.data.windows import WindowSet

FOLDER = Path("pm25_stmvl")
GROUND = FOLDER / "pm25_ground.txt.gz"
MISSING = FOLDER / "pm25_missing.txt.gz"
MEANSTD = FOLDER / "pm25_train_meanstd.csv"
TEST_MONTHS: tuple[int, ...] = (3, 6, 9, 12)
TRAIN_MONTHS: tuple[int, ...] = (1, 2, 4, 5, 7, 8, 10, 11)
PATTERN_MONTHS: tuple[int, ...] = (2, 5, 8, 11)  # not the months that made the test patterns
WINDOW = 36


@dataclass(frozen=True)
class PM25Frames:
    """Both files on one hourly index: values (T, 36) float64 with NaN, station ids, times."""

    ground: np.ndarray
    missing: np.ndarray
    stations: tuple[str, ...]
    times: pd.DatetimeIndex


@dataclass(frozen=True)
class PM25Splits:
    """Normalised windows; `patterns` (P, L, K) bool are the historical masks for training;
    `*_rows` (N, L) the file rows of each window (for stitching results back)."""

    train: WindowSet
    valid: WindowSet
    test: WindowSet
    scaler: Scaler
    patterns: np.ndarray
    train_rows: np.ndarray
    valid_rows: np.ndarray
    test_rows: np.ndarray


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(
            f"{path} not found; set CSDI_DATA_DIR to the folder holding {FOLDER}/ "
            "(see `csdi data verify`)"
        )
    frame = pd.read_csv(path, index_col="datetime", parse_dates=True)
    if frame.shape[1] != 36:
        raise DataError(f"{path}: expected 36 station columns; found {frame.shape[1]}")
    return frame


def read_pm25(data_dir: Path | str) -> PM25Frames:
    """Ground-truth and missing files (8759 hourly rows × 36 stations), checked to align."""
    directory = Path(data_dir)
    ground, missing = _read(directory / GROUND), _read(directory / MISSING)
    if not ground.index.equals(missing.index) or list(ground.columns) != list(missing.columns):
        raise DataError(f"{directory / MISSING}: index or columns differ from {GROUND.name}")
    g, m = ground.to_numpy(np.float64), missing.to_numpy(np.float64)
    if (~np.isnan(m) & np.isnan(g)).any():
        raise DataError(f"{directory / MISSING}: holds values the ground-truth file lacks")
    return PM25Frames(g, m, tuple(ground.columns), pd.DatetimeIndex(ground.index))


def train_scaler(frames: PM25Frames) -> Scaler:
    """Per-station mean and sample std (ddof 1) of the ground truth over the training months."""
    rows = np.isin(frames.times.month, TRAIN_MONTHS)
    g = frames.ground[rows]  # (T_train, 36)
    return Scaler(mean=np.nanmean(g, axis=0), std=np.nanstd(g, axis=0, ddof=1))


def read_scaler(path: Path, stations: tuple[str, ...]) -> Scaler:
    """`pm25_train_meanstd.csv` (sensor_id, train_mean, train_std) in the stations' order."""
    table = pd.read_csv(path)
    expected = [int(s) for s in stations]
    if table["sensor_id"].tolist() != expected:
        raise DataError(f"{path}: sensor_id column does not list the 36 stations in file order")
    return Scaler(
        mean=table["train_mean"].to_numpy(np.float64), std=table["train_std"].to_numpy(np.float64)
    )


def _month_windows(starts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(N, L) row indices of windows starting at `starts` (positions inside `rows`)."""
    return rows[starts[:, None] + np.arange(WINDOW)]


def evaluation_window_starts(n_rows: int) -> tuple[np.ndarray, int]:
    """Non-overlapping starts 0, 36, … and, when 36 ∤ n_rows, a last start n_rows − 36 whose
    first `cut` steps were evaluated already; returns (starts, cut)."""
    starts = np.arange(0, n_rows - WINDOW + 1, WINDOW)
    cut = 0
    if n_rows % WINDOW:
        starts = np.append(starts, n_rows - WINDOW)
        cut = WINDOW - n_rows % WINDOW
    return starts, cut


def load_pm25(data_dir: Path | str, *, validindex: int = 0) -> PM25Splits:
    """CSDI's PM2.5 protocol: train / valid / test windows (36 h × 36 stations), normalised."""
    if validindex not in range(len(TRAIN_MONTHS)):
        raise ValueError(f"validindex must be one of 0..{len(TRAIN_MONTHS) - 1}; got {validindex}")
    directory = Path(data_dir)
    frames = read_pm25(directory)
    scaler_path = directory / MEANSTD
    scaler = (
        read_scaler(scaler_path, frames.stations) if scaler_path.is_file() else train_scaler(frames)
    )
    observed = ~np.isnan(frames.ground)  # (T, 36)
    given = ~np.isnan(frames.missing)
    values = scaler.transform(frames.ground, observed)  # (T, 36) float32, 0 where unobserved
    month = frames.times.month.to_numpy()

    def windows(index: np.ndarray, cond: np.ndarray | None) -> WindowSet:
        return WindowSet(
            values=values[index],
            observed=observed[index],
            cond=cond,
            timestamps=np.broadcast_to(np.arange(WINDOW, dtype=np.float32), index.shape).copy(),
            feature_names=frames.stations,
        )

    def stride_one(months: tuple[int, ...]) -> np.ndarray:
        parts = []
        for m in months:
            rows = np.flatnonzero(month == m)
            parts.append(_month_windows(np.arange(len(rows) - WINDOW + 1), rows))
        return np.concatenate(parts)  # (N, L)

    valid_month = TRAIN_MONTHS[validindex]
    train_months = tuple(m for m in TRAIN_MONTHS if m != valid_month)
    train_idx = stride_one(train_months)
    valid_idx = stride_one((valid_month,))
    pattern_idx = stride_one(tuple(m for m in PATTERN_MONTHS if m != valid_month))

    test_parts, cut_parts = [], []
    for m in TEST_MONTHS:
        rows = np.flatnonzero(month == m)
        starts, cut = evaluation_window_starts(len(rows))
        test_parts.append(_month_windows(starts, rows))
        cuts = np.zeros(len(starts), np.int64)
        if cut:
            cuts[-1] = cut
        cut_parts.append(cuts)
    test_idx = np.concatenate(test_parts)  # (N_test, L)
    test_cut = np.concatenate(cut_parts)  # (N_test,) leading steps not evaluated
    test_cond = given[test_idx]
    evaluated = np.arange(WINDOW)[None, :] >= test_cut[:, None]  # (N_test, L)
    # steps already evaluated in the previous window: keep what the model is given (cond),
    # drop their targets from `observed`, so each target counts once
    full = windows(test_idx, test_cond)
    test_observed = full.observed & (test_cond | evaluated[:, :, None])
    test = WindowSet(
        values=np.where(test_observed, full.values, 0.0).astype(np.float32),
        observed=test_observed,
        cond=test_cond,
        timestamps=full.timestamps,
        feature_names=full.feature_names,
    )
    return PM25Splits(
        train=windows(train_idx, None),
        valid=windows(valid_idx, given[valid_idx]),
        test=test,
        scaler=scaler,
        patterns=observed[pattern_idx],
        train_rows=train_idx,
        valid_rows=valid_idx,
        test_rows=test_idx,
    )
