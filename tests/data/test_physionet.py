"""The PhysioNet protocol against the reference implementation's golden output, bit for bit."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from csdi.data.errors import DataError
from csdi.data.physionet import (
    ATTRIBUTES,
    ArchiveError,
    PhysioNetRecords,
    fold_indices,
    holdout_cond,
    load_physionet,
    load_records,
    read_archive,
)


@pytest.fixture(scope="session")
def golden(fixtures_dir: Path) -> dict[str, np.ndarray]:
    with np.load(fixtures_dir / "physionet_protocol_seed1.npz") as f:
        data = {k: f[k] for k in f.files}
    shape = tuple(data["shape"])

    def unpack(a: np.ndarray) -> np.ndarray:
        return np.unpackbits(a)[: int(np.prod(shape))].reshape(shape).astype(bool)

    for k in ("observed_mask", "gt_mask_0.1", "gt_mask_0.5", "gt_mask_0.9"):
        data[k] = unpack(data[k])
    return data


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("csdi_cache")


@pytest.fixture(scope="session")
def records(data_dir: Path, cache_dir: Path) -> PhysioNetRecords:
    return load_records(data_dir, cache_dir)


@pytest.fixture(scope="session")
def kept_observed(records: PhysioNetRecords) -> np.ndarray:
    observed = ~np.isnan(records.values)
    return observed[observed.any(axis=(1, 2))]


def test_records_and_observed_mask_match_reference(records, kept_observed, golden) -> None:
    assert records.values.shape == (4000, 48, 35)
    assert tuple(golden["attributes"]) == ATTRIBUTES
    observed = ~np.isnan(records.values)
    empty = records.record_ids[~observed.any(axis=(1, 2))]
    assert empty.tolist() == [140501, 140936, 141264]
    kept = records.record_ids[observed.any(axis=(1, 2))]
    np.testing.assert_array_equal(kept, golden["record_ids"])
    np.testing.assert_array_equal(kept_observed, golden["observed_mask"])
    assert abs(1.0 - observed.mean() - 0.8053) < 5e-5  # the data README's missing ratio


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9])
def test_holdout_pattern_is_the_reference_one(kept_observed, golden, ratio: float) -> None:
    cond = holdout_cond(kept_observed, ratio, seed=1)
    np.testing.assert_array_equal(cond, golden[f"gt_mask_{ratio}"])


@pytest.mark.parametrize("fold", range(5))
def test_folds_are_the_reference_ones(golden, fold: int) -> None:
    train, valid, test = fold_indices(3997, fold, seed=1)
    np.testing.assert_array_equal(train, golden[f"fold{fold}_train"])
    np.testing.assert_array_equal(valid, golden[f"fold{fold}_valid"])
    np.testing.assert_array_equal(test, golden[f"fold{fold}_test"])


def test_load_physionet_splits_and_normalisation(data_dir, cache_dir, golden) -> None:
    start = time.perf_counter()
    splits = load_physionet(data_dir, missing_ratio=0.1, fold=0, cache_dir=cache_dir)
    assert time.perf_counter() - start < 5.0  # cached parse: the spec asks for < 1 s; slack for CI
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (2797, 401, 799)
    # float parsing may differ from pandas' in the last ulp: 1e-10 relative is far below that
    np.testing.assert_allclose(splits.scaler.mean, golden["mean"], rtol=1e-10)
    np.testing.assert_allclose(splits.scaler.std, golden["std"], rtol=1e-10)
    test_idx = golden["fold0_test"]
    np.testing.assert_array_equal(splits.test.observed, golden["observed_mask"][test_idx])
    np.testing.assert_array_equal(splits.test.cond, golden["gt_mask_0.1"][test_idx])
    w = splits.train
    assert w.values.dtype == np.float32 and not np.isnan(w.values).any()
    assert (w.values[~w.observed] == 0).all()
    np.testing.assert_array_equal(w.timestamps[0], np.arange(48))
    # the normalised observed values over all records have mean 0 and std 1 per variable
    vals = np.concatenate([s.values for s in (splits.train, splits.valid, splits.test)])
    obs = np.concatenate([s.observed for s in (splits.train, splits.valid, splits.test)])
    for k in (0, 17, 34):
        col = vals[..., k][obs[..., k]].astype(np.float64)
        assert abs(col.mean()) < 1e-5 and abs(col.std() - 1.0) < 1e-5  # float32 rounding


def test_train_only_normalisation(data_dir, cache_dir) -> None:
    splits = load_physionet(
        data_dir, missing_ratio=0.5, fold=1, cache_dir=cache_dir, normalisation="train"
    )
    assert splits.normalisation == "train"
    for k in (1, 20):
        col = splits.train.values[..., k][splits.train.observed[..., k]].astype(np.float64)
        assert abs(col.mean()) < 1e-5 and abs(col.std() - 1.0) < 1e-5


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_unsafe_archive_member_is_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "evil.tar.gz", {"../evil.txt": b"Time,Parameter,Value\n"})
    with pytest.raises(ArchiveError, match=r"unsafe member name '\.\./evil\.txt'"):
        read_archive(archive)
    absolute = _tar(tmp_path / "abs.tar.gz", {"/etc/evil.txt": b"x"})
    with pytest.raises(ArchiveError, match="unsafe member name"):
        read_archive(absolute)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_tiny_archive_parses_last_value_per_hour(tmp_path: Path) -> None:
    text = (
        b"Time,Parameter,Value\n00:00,RecordID,7\n00:00,Age,54\n00:10,HR,70\n00:50,HR,75\n"
        b"01:05,pH,7.4\n47:59,Na,140\n48:00,Na,141\n"
    )
    rec = read_archive(_tar(tmp_path / "tiny.tar.gz", {"set-a/000007.txt": text}))
    assert rec.record_ids.tolist() == [7]
    hr, ph, na = ATTRIBUTES.index("HR"), ATTRIBUTES.index("pH"), ATTRIBUTES.index("Na")
    assert rec.values[0, 0, hr] == 75.0 and rec.values[0, 1, ph] == 7.4
    assert rec.values[0, 47, na] == 140.0  # 48:00 falls outside hours 0..47
    assert (~np.isnan(rec.values)).sum() == 3


def test_missing_archive_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"set-a\.tar\.gz not found"):
        load_records(tmp_path, tmp_path / "cache")
