"""PM2.5 (STMVL) under CSDI's protocol: the data README's verified numbers, window layout, no
leakage, and every evaluation target counted exactly once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csdi.config import DataConfig
from csdi.data.pm25 import (
    GROUND,
    MEANSTD,
    MISSING,
    PATTERN_MONTHS,
    TEST_MONTHS,
    evaluation_window_starts,
    load_pm25,
    read_pm25,
    train_scaler,
)
from csdi.experiment import load_splits

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pm25_dir() -> Path:
    path = Path(os.environ.get("CSDI_DATA_DIR", REPO / "data" / "raw"))
    if not (path / GROUND).is_file() or not (path / MISSING).is_file():
        pytest.skip(f"PM2.5 files not found under {path} (set CSDI_DATA_DIR)")
    return path


@pytest.fixture(scope="module")
def frames(pm25_dir):  # type: ignore[no-untyped-def]
    return read_pm25(pm25_dir)


@pytest.fixture(scope="module")
def splits(pm25_dir):  # type: ignore[no-untyped-def]
    return load_pm25(pm25_dir)


def test_files_match_the_readme(frames) -> None:
    assert frames.ground.shape == frames.missing.shape == (8759, 36)
    assert frames.times[0] == pd.Timestamp("2014-05-01 01:00")
    assert frames.times[-1] == pd.Timestamp("2015-04-30 23:00")
    assert round(float(np.isnan(frames.ground).mean()), 4) == 0.1325
    assert round(float(np.isnan(frames.missing).mean()), 4) == 0.2458
    targets = ~np.isnan(frames.ground) & np.isnan(frames.missing)
    assert targets.sum() == 35_737  # README: evaluation targets over the whole file
    assert np.isin(frames.times.month, TEST_MONTHS).sum() == 2928


def test_scaler_is_the_training_months_sample_std(pm25_dir, frames, splits) -> None:
    """The shipped csv equals pandas describe() over months 1,2,4,5,7,8,10,11 (README: 5e-8)."""
    assert (pm25_dir / MEANSTD).is_file()
    ours = train_scaler(frames)
    np.testing.assert_allclose(splits.scaler.mean, ours.mean, rtol=1e-8)
    np.testing.assert_allclose(splits.scaler.std, ours.std, rtol=1e-8)
    rows = np.isin(frames.times.month, (1, 2, 4, 5, 7, 8, 10, 11))
    described = pd.DataFrame(frames.ground[rows]).describe()
    np.testing.assert_allclose(ours.std, described.loc["std"].to_numpy(), rtol=1e-12)


def test_test_windows_evaluate_every_target_of_the_test_months_once(frames, splits) -> None:
    test, rows = splits.test, splits.test_rows
    months = frames.times.month.to_numpy()
    # 744-row months: 20 windows + 1 aligned to the end; 720-row months: exactly 20
    assert len(test) == 21 + 20 + 20 + 21
    assert test.values.shape == (82, 36, 36)
    assert set(np.unique(months[rows])) == set(TEST_MONTHS)
    assert (months[rows] == months[rows[:, :1]]).all()  # no window crosses a month boundary
    raw_targets = ~np.isnan(frames.ground) & np.isnan(frames.missing)
    in_test = np.isin(months, TEST_MONTHS)
    counted = np.zeros(frames.ground.shape, np.int64)
    np.add.at(counted, rows, test.targets.astype(np.int64))  # (T, 36) evaluations per entry
    assert counted.max() == 1
    np.testing.assert_array_equal(counted.astype(bool), raw_targets & in_test[:, None])
    assert test.targets.sum() == (raw_targets & in_test[:, None]).sum() == 20_434
    # targets hold the ground truth in µg/m³ after un-scaling
    truth = frames.ground[rows][test.targets]
    back = splits.scaler.inverse(test.values)[test.targets]
    np.testing.assert_allclose(back, truth, rtol=1e-5, atol=1e-3)


def test_model_input_is_the_missing_file_and_never_a_target(frames, splits) -> None:
    test, rows = splits.test, splits.test_rows
    assert test.cond is not None
    np.testing.assert_array_equal(test.cond, ~np.isnan(frames.missing)[rows])
    assert not (test.cond & test.targets).any()
    # the end-aligned window keeps its whole cond (as the reference) but not its evaluated rows
    starts, cut = evaluation_window_starts(744)
    assert starts[-1] == 744 - 36 and cut == 36 - 744 % 36 == 12
    last_march = np.flatnonzero(frames.times.month[rows[:, 0]] == 3)[-1]
    assert not test.targets[last_march, :cut].any() and test.targets[last_march, cut:].any()
    assert test.cond[last_march, :cut].any()


def test_training_windows_never_see_test_months(frames, splits) -> None:
    months = frames.times.month.to_numpy()
    lengths = {m: int((months == m).sum()) for m in range(1, 13)}
    assert not np.isin(months[splits.train_rows], TEST_MONTHS).any()
    assert not np.isin(months[splits.valid_rows], TEST_MONTHS).any()
    assert (months[splits.valid_rows] == 1).all()  # validindex 0 → month 1
    assert not (months[splits.train_rows] == 1).any()
    train_months = (2, 4, 5, 7, 8, 10, 11)
    assert len(splits.train) == sum(lengths[m] - 35 for m in train_months)  # stride 1
    assert len(splits.valid) == lengths[1] - 35
    # training windows carry the ground truth's observed entries and no protocol cond
    assert splits.train.cond is None
    np.testing.assert_array_equal(
        splits.train.observed, ~np.isnan(frames.ground)[splits.train_rows]
    )
    assert splits.patterns.shape == (sum(lengths[m] - 35 for m in PATTERN_MONTHS), 36, 36)


def test_registry_entry_and_bad_validindex(pm25_dir) -> None:
    s = load_splits(DataConfig(dataset="pm25", window=36), pm25_dir)
    assert s.units == "original" and s.patterns is not None and s.test is not None
    with pytest.raises(ValueError, match=r"validindex must be one of 0\.\.7"):
        load_pm25(pm25_dir, validindex=8)
