"""Forecasting protocols as imputation with the future masked: exchange_rate_nips and ETT.

Every window has `context + horizon` steps; in validation and test windows `cond` is the
observed history and hides exactly the last `horizon` steps (the forecast targets).

- exchange_rate_nips (GluonTS layout; Salinas et al. 2019, Rasul et al. 2021 "TimeGrad"):
  8 business-day series, train.json 6071 steps, test.json the 5 rolling cut-offs × 8 series of
  lengths 6071 + 30k, k = 1…5, prediction length 30. The test windows end at those cut-offs. The
  model is trained on rows [0, 6071 − 150) and validated on 5 rolling windows whose targets are
  the last 150 training rows (GluonTS has no validation split; these keep model selection off
  the test set). Per-series z-score with train.json statistics; metrics in original units.
- ETTh1 / ETTm1 (Zhou et al. 2021, Informer): train rows [0, 8640), validation
  [8640 − context, 11520), test [11520 − context, 14400) (×4 for the 15-minute files), z-score
  with training statistics (ddof 0, as sklearn's StandardScaler); every window inside a range
  with the given stride (Informer: test stride 1). Metrics in normalised units, as Informer's.
The archive is read in memory (never extracted), with member names checked.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from csdi.data.errors import DataError
from csdi.data.scaling import Scaler, fit_scaler
from csdi.data.windows import WindowSet

EXCHANGE_ARCHIVE = Path("exchange_rate") / "exchange_rate_nips.tar.gz"
EXCHANGE_HORIZON = 30
EXCHANGE_TEST_WINDOWS = 5
EXCHANGE_CONTEXT = 90  # default history: three prediction lengths
ETT_CONTEXT = 96  # Informer's look-back window
ETT_FILES = {"etth1": Path("ett") / "ETTh1.csv.gz", "ettm1": Path("ett") / "ETTm1.csv.gz"}
ETT_BORDERS = (8640, 11520, 14400)  # hourly; ×4 for the 15-minute files
DEFAULT_CONTEXT = {
    "exchange_rate_nips": EXCHANGE_CONTEXT,
    "etth1": ETT_CONTEXT,
    "ettm1": ETT_CONTEXT,
}


@dataclass(frozen=True)
class ForecastSplits:
    """Normalised windows of length context + horizon; valid/test cond hide the last horizon.
    `*_ends` (N,): the row after each window's last row, in the series' own rows."""

    train: WindowSet
    valid: WindowSet
    test: WindowSet
    scaler: Scaler
    horizon: int
    context: int
    train_ends: np.ndarray
    valid_ends: np.ndarray
    test_ends: np.ndarray


def forecast_windows(
    values: np.ndarray,
    ends: np.ndarray,
    context: int,
    horizon: int,
    feature_names: tuple[str, ...],
    *,
    with_cond: bool,
) -> WindowSet:
    """Windows of rows [end − context − horizon, end) of a normalised (T, K) series (no NaN).

    With `with_cond`, cond = True on the first `context` steps and False on the last `horizon`.
    """
    length = context + horizon
    index = (np.asarray(ends)[:, None] - length + np.arange(length)).astype(np.int64)  # (N, L)
    if index.size and (index.min() < 0 or index.max() >= len(values)):
        raise ValueError(f"windows of {length} steps reach outside the series of {len(values)}")
    observed = np.broadcast_to(~np.isnan(values), values.shape)[index]  # (N, L, K)
    cond = None
    if with_cond:
        cond = observed.copy()
        cond[:, context:] = False
    return WindowSet(
        values=np.where(observed, values[index], 0.0).astype(np.float32),
        observed=observed,
        cond=cond,
        timestamps=np.broadcast_to(np.arange(length, dtype=np.float32), index.shape).copy(),
        feature_names=feature_names,
    )


def _ends(first_end: int, last_end: int, stride: int) -> np.ndarray:
    """Window ends from `last_end` back every `stride` rows, not before `first_end`, ascending.

    Anchored at the last row so the most recent data is always in a window.
    """
    if last_end < first_end:
        raise ValueError("the split is shorter than one window (lower the context or horizon)")
    return np.arange(last_end, first_end - 1, -stride)[::-1]


def _check(context: int, horizon: int, stride: int) -> None:
    if context < 1 or horizon < 1 or stride < 1:
        raise ValueError(
            f"context, horizon and stride must be ≥ 1; got {context}, {horizon}, {stride}"
        )


# ---------------------------------------------------------------------- exchange_rate_nips
def _safe_member(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise DataError(f"{archive}: refusing unsafe member name {name!r}")
    return path


def _json_lines(
    tf: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str, archive: Path
) -> list[dict[str, Any]]:
    member = members.get(name)
    handle = tf.extractfile(member) if member is not None else None
    if handle is None:
        raise DataError(f"{archive}: no member {name!r} (is this the GluonTS exchange_rate_nips?)")
    return [json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line.strip()]


def read_exchange_nips(archive: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(train (6071, 8), full (6221, 8), n_train): the 8 series as columns.

    The full series is the longest test cut-off; every test series must extend its train series
    and be a prefix of the full one (checked).
    """
    if not archive.is_file():
        raise DataError(
            f"{archive} not found; set CSDI_DATA_DIR to the folder holding exchange_rate/ "
            "(see `csdi data verify`)"
        )
    with tarfile.open(archive, "r:*") as tf:
        members = {}
        for m in tf.getmembers():
            path = _safe_member(m.name, archive)
            if m.isfile():
                members[str(PurePosixPath(*path.parts[-2:]))] = m
        train = _json_lines(tf, members, "train/train.json", archive)
        test = _json_lines(tf, members, "test/test.json", archive)
    k = len(train)
    if k == 0 or len(test) != EXCHANGE_TEST_WINDOWS * k:
        raise DataError(
            f"{archive}: expected {EXCHANGE_TEST_WINDOWS} × {k} test series; found {len(test)}"
        )
    train_arr = np.array([s["target"] for s in train], dtype=np.float64).T  # (T_train, K)
    full = np.array([s["target"] for s in test[-k:]], dtype=np.float64).T  # (T_full, K)
    n_train = train_arr.shape[0]
    for i, s in enumerate(test):
        target = np.asarray(s["target"], dtype=np.float64)
        expected = n_train + EXCHANGE_HORIZON * (i // k + 1)
        if (
            len(target) != expected
            or not np.allclose(target[:n_train], train_arr[:, i % k])
            or not np.allclose(target, full[: len(target), i % k])
        ):
            raise DataError(f"{archive}: test series {i} is not a rolling cut-off of the train set")
    return train_arr, full, n_train


def load_exchange_rate_nips(
    data_dir: Path | str, *, context: int = EXCHANGE_CONTEXT, stride: int = 1
) -> ForecastSplits:
    """exchange_rate_nips: 5 rolling test windows of context + 30 steps, 8 series."""
    horizon = EXCHANGE_HORIZON
    _check(context, horizon, stride)
    train_arr, full, n_train = read_exchange_nips(Path(data_dir) / EXCHANGE_ARCHIVE)
    scaler = fit_scaler(train_arr, np.ones(train_arr.shape, bool))
    scaled = scaler.transform(full, np.ones(full.shape, bool))  # (T_full, K)
    names = tuple(f"series{k}" for k in range(full.shape[1]))
    length = context + horizon
    valid_start = n_train - EXCHANGE_TEST_WINDOWS * horizon  # first validation target row
    rolling = horizon * np.arange(1, EXCHANGE_TEST_WINDOWS + 1)
    return _splits(
        scaled,
        names,
        context,
        horizon,
        scaler,
        _ends(length, valid_start, stride),
        valid_start + rolling,
        n_train + rolling,
    )


def _splits(
    scaled: np.ndarray,
    names: tuple[str, ...],
    context: int,
    horizon: int,
    scaler: Scaler,
    train_ends: np.ndarray,
    valid_ends: np.ndarray,
    test_ends: np.ndarray,
) -> ForecastSplits:
    def cut(ends: np.ndarray, with_cond: bool) -> WindowSet:
        return forecast_windows(scaled, ends, context, horizon, names, with_cond=with_cond)

    return ForecastSplits(
        train=cut(train_ends, False),
        valid=cut(valid_ends, True),
        test=cut(test_ends, True),
        scaler=scaler,
        horizon=horizon,
        context=context,
        train_ends=train_ends,
        valid_ends=valid_ends,
        test_ends=test_ends,
    )


# ---------------------------------------------------------------------- ETT
def read_ett(path: Path) -> pd.DataFrame:
    """An ETT-small CSV (date + 7 numeric columns), indexed by date."""
    if not path.is_file():
        raise DataError(
            f"{path} not found; set CSDI_DATA_DIR to the folder holding ett/ "
            "(see `csdi data verify`)"
        )
    frame = pd.read_csv(path, index_col="date", parse_dates=True)
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise DataError(f"{path}: non-numeric column(s) {bad}")
    return frame


def ett_borders(name: str) -> tuple[int, int, int]:
    """Informer's (train end, validation end, test end) rows: hourly, or ×4 for ETTm."""
    scale = 4 if name.startswith("ettm") else 1
    return tuple(scale * b for b in ETT_BORDERS)  # type: ignore[return-value]


def load_ett(
    data_dir: Path | str,
    name: str,
    *,
    horizon: int,
    context: int = ETT_CONTEXT,
    stride: int = 1,
    test_stride: int = 1,
) -> ForecastSplits:
    """ETTh1 / ETTm1 with Informer's borders; windows of context + horizon steps."""
    if name not in ETT_FILES:
        raise ValueError(f"unknown ETT dataset {name!r}; choose one of {sorted(ETT_FILES)}")
    _check(context, horizon, min(stride, test_stride))
    frame = read_ett(Path(data_dir) / ETT_FILES[name])
    train_end, valid_end, test_end = ett_borders(name)
    if len(frame) < test_end:
        raise DataError(f"{ETT_FILES[name]}: {len(frame)} rows; the protocol needs {test_end}")
    raw = frame.to_numpy(np.float64)[:test_end]  # rows after the test border are unused
    scaler = fit_scaler(raw[:train_end], ~np.isnan(raw[:train_end]))
    scaled = np.where(np.isnan(raw), np.nan, scaler.transform(raw, ~np.isnan(raw)))
    names = tuple(str(c) for c in frame.columns)
    length = context + horizon
    # a window ending at row e has targets [e − H, e): validation targets lie in
    # [train_end, valid_end), test targets in [valid_end, test_end), as Informer's borders give
    return _splits(
        scaled,
        names,
        context,
        horizon,
        scaler,
        _ends(length, train_end, stride),
        _ends(train_end + horizon, valid_end, test_stride),
        _ends(valid_end + horizon, test_end, test_stride),
    )
