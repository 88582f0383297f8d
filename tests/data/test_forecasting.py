"""Forecasting protocols: exchange_rate_nips (GluonTS archive) and ETT (Informer borders).

Checked against the data README's numbers and against independent reads of the raw files; the
test windows hide exactly the horizon, and no training window reaches a validation/test target.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from csdi.config import DataConfig
from csdi.data.errors import DataError
from csdi.data.forecasting import (
    ETT_FILES,
    EXCHANGE_ARCHIVE,
    ett_borders,
    load_ett,
    load_exchange_rate_nips,
    read_exchange_nips,
)
from csdi.data.masking import make_cond_mask
from csdi.experiment import load_splits
from csdi.forecaster import seasonal_naive_metrics

REPO = Path(__file__).resolve().parents[2]


def _dir(relative: Path) -> Path:
    path = Path(os.environ.get("CSDI_DATA_DIR", REPO / "data" / "raw"))
    if not (path / relative).is_file():
        pytest.skip(f"{relative} not found under {path} (set CSDI_DATA_DIR)")
    return path


@pytest.fixture(scope="module")
def exchange_dir() -> Path:
    return _dir(EXCHANGE_ARCHIVE)


@pytest.fixture(scope="module")
def ett_dir() -> Path:
    return _dir(ETT_FILES["etth1"])


def _hides_exactly_last(cond: np.ndarray, horizon: int) -> None:
    assert cond[:, :-horizon].all() and not cond[:, -horizon:].any()


def test_exchange_windows_match_the_archive(exchange_dir) -> None:
    s = load_exchange_rate_nips(exchange_dir, context=60)
    assert s.test.values.shape == (5, 90, 8) and s.horizon == 30
    _hides_exactly_last(s.test.cond, 30)
    _hides_exactly_last(s.valid.cond, 30)
    np.testing.assert_array_equal(s.test_ends, 6071 + 30 * np.arange(1, 6))
    # independent read: each test target = the last 30 values of that cut-off in test.json
    with tarfile.open(exchange_dir / EXCHANGE_ARCHIVE) as tf:
        handle = tf.extractfile("exchange_rate_nips/test/test.json")
        assert handle is not None
        test = [json.loads(line) for line in handle.read().decode().splitlines() if line]
    assert len(test) == 40
    for w in range(5):
        truth = np.array([test[8 * w + k]["target"][-30:] for k in range(8)]).T  # (30, 8)
        back = s.scaler.inverse(s.test.values[w])[-30:]
        np.testing.assert_allclose(back, truth, rtol=1e-5)
    # no training window reaches the validation targets (last 150 training rows) or beyond
    assert s.train_ends.max() == 6071 - 150 == s.valid_ends.min() - 30
    assert len(s.train) == 6071 - 150 - 90 + 1


def test_exchange_series_and_scaler(exchange_dir) -> None:
    train, full, n_train = read_exchange_nips(exchange_dir / EXCHANGE_ARCHIVE)
    assert train.shape == (6071, 8) and full.shape == (6221, 8) and n_train == 6071
    s = load_exchange_rate_nips(exchange_dir)
    np.testing.assert_allclose(s.scaler.mean, train.mean(axis=0))
    np.testing.assert_allclose(s.scaler.std, train.std(axis=0))


def test_unsafe_archive_member_is_refused(tmp_path) -> None:
    archive = tmp_path / EXCHANGE_ARCHIVE
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tf:
        data = b'{"start": "1990-01-01", "target": [1.0]}\n'
        info = tarfile.TarInfo("../evil/train/train.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="unsafe member name"):
        load_exchange_rate_nips(tmp_path)


def test_ett_informer_borders(ett_dir) -> None:
    context, horizon = 96, 24
    s = load_ett(ett_dir, "etth1", horizon=horizon, context=context)
    assert (len(s.train), len(s.valid), len(s.test)) == (8640 - 120 + 1, 2880 - 23, 2880 - 23)
    assert s.train_ends.max() == 8640  # train rows [0, 8640)
    assert s.valid_ends.min() - context - horizon == 8640 - context  # val from 8640 − L
    assert s.test_ends.min() - context - horizon == 11520 - context  # test from 11520 − L
    assert s.test_ends.max() == 14400
    _hides_exactly_last(s.test.cond, horizon)
    # independent z-score with pandas over the training rows (ddof 0, as StandardScaler)
    raw = pd.read_csv(ett_dir / ETT_FILES["etth1"], index_col="date").to_numpy()
    mean, std = raw[:8640].mean(axis=0), raw[:8640].std(axis=0)
    first = (raw[11520 - context : 11520 + horizon] - mean) / std
    np.testing.assert_allclose(s.test.values[0], first, rtol=1e-5, atol=1e-5)
    assert ett_borders("ettm1") == (34560, 46080, 57600)


def test_ettm1_uses_four_times_the_borders() -> None:
    data = _dir(ETT_FILES["ettm1"])
    s = load_ett(data, "ettm1", horizon=96, context=96, stride=96, test_stride=96)
    assert s.train_ends.max() == 34560 and s.test_ends.max() == 57600
    assert s.test_ends.min() == 46080 + 96


def test_forecast_mask_matches_the_test_cond(ett_dir) -> None:
    s = load_ett(ett_dir, "etth1", horizon=24, test_stride=500)
    observed = torch.from_numpy(s.test.observed.transpose(0, 2, 1).astype(np.float32))  # (N, K, L)
    cond = make_cond_mask("forecast", observed, torch.Generator(), horizon=24)
    np.testing.assert_array_equal(cond.numpy().transpose(0, 2, 1).astype(bool), s.test.cond)


def test_seasonal_naive_equals_a_direct_computation(ett_dir) -> None:
    cfg = DataConfig(dataset="etth1", horizon=24, context=48, test_stride=24)
    metrics = seasonal_naive_metrics(cfg, season=24, directory=ett_dir)
    raw = pd.read_csv(ett_dir / ETT_FILES["etth1"], index_col="date").to_numpy()
    z = (raw - raw[:8640].mean(axis=0)) / raw[:8640].std(axis=0)
    ends = np.arange(14400, 11520 + 24 - 1, -24)
    errors = [np.abs(z[e - 24 : e] - z[e - 48 : e - 24]) for e in ends]  # repeat the last day
    assert metrics["mae"] == pytest.approx(float(np.mean(errors)), rel=1e-5)
    assert metrics["n_targets"] == len(ends) * 24 * 7


def test_registry_entries(ett_dir) -> None:
    s = load_splits(DataConfig(dataset="etth1", horizon=24, test_stride=24), ett_dir)
    assert s.units == "normalised" and s.protocol["horizon"] == 24 and s.protocol["context"] == 96
    with pytest.raises(ValueError, match=r"needs data\.horizon"):
        load_splits(DataConfig(dataset="etth1"), ett_dir)
