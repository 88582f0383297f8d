"""PhysioNet Challenge 2012 set-a under CSDI's imputation protocol (Tashiro et al. 2021).

Reproduces the reference (ermongroup/CSDI, dataset_physio.py) bit for bit:
- 35 variables on 48 hourly bins (bin = int(HH) of "HH:MM", hours 0..47), last value per bin;
  records in ascending record-id order, the 3 with no observation at all dropped (3997 kept);
- evaluation targets: a legacy RandomState(seed) created once; for each record in order,
  `choice(observed_flat_indices, int(n_obs · ratio), replace=False)` are hidden;
- folds: shuffle 0..N−1 with RandomState(seed), test = [int(0.2·f·N), int(0.2·(f+1)·N)),
  reshuffle the rest with a fresh RandomState(seed), first int(0.7·N) train, rest validation;
- normalisation: mean and population std of observed values over all records ("all", as the
  reference) or over the training records only ("train").
The archive is read in memory (never extracted); the parsed tensor is cached as .npz keyed by
the archive's SHA-256.
"""

from __future__ import annotations

import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np

from csdi.data.errors import DataError
from csdi.data.registry import sha256_file
from csdi.data.scaling import Scaler, fit_scaler
from csdi.data.windows import WindowSet

logger = logging.getLogger(__name__)

ATTRIBUTES: tuple[str, ...] = (
    "DiasABP", "HR", "Na", "Lactate", "NIDiasABP", "PaO2", "WBC", "pH", "Albumin", "ALT",
    "Glucose", "SaO2", "Temp", "AST", "Bilirubin", "HCO3", "BUN", "RespRate", "Mg", "HCT",
    "SysABP", "FiO2", "K", "GCS", "Cholesterol", "NISysABP", "TroponinT", "MAP", "TroponinI",
    "PaCO2", "Platelets", "Urine", "NIMAP", "Creatinine", "ALP",
)  # fmt: skip
_ATTRIBUTE_INDEX = {name: j for j, name in enumerate(ATTRIBUTES)}
N_HOURS = 48
ARCHIVE = Path("physionet2012") / "set-a.tar.gz"
_CACHE_VERSION = 1


class ArchiveError(DataError):
    """A data archive that is unsafe or not in the expected layout."""


@dataclass(frozen=True)
class PhysioNetRecords:
    """The parsed hourly tensor: values (R, 48, 35) float64 with NaN missing, record ids (R,)."""

    values: np.ndarray
    record_ids: np.ndarray


@dataclass(frozen=True)
class PhysioNetSplits:
    """One fold of the protocol; values normalised by `scaler`, cond = the test pattern."""

    train: WindowSet
    valid: WindowSet
    test: WindowSet
    scaler: Scaler
    normalisation: str


def default_data_dir() -> Path:
    """The raw data directory: $CSDI_DATA_DIR, else data/raw."""
    return Path(os.environ.get("CSDI_DATA_DIR", "data/raw"))


def default_cache_dir() -> Path:
    """Where parsed tensors are cached: $CSDI_CACHE_DIR, else ~/.cache/csdi."""
    return Path(os.environ.get("CSDI_CACHE_DIR", Path.home() / ".cache" / "csdi"))


def _safe_member_name(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise ArchiveError(f"{archive}: refusing unsafe member name {name!r}")
    return path


def _parse_record(text: str) -> np.ndarray:
    """One record's 'Time,Parameter,Value' text → (48, 35) float64, NaN missing, last per bin."""
    out = np.full((N_HOURS, len(ATTRIBUTES)), np.nan)
    for line in text.splitlines()[1:]:
        if not line:
            continue
        time, param, value = line.split(",")
        j = _ATTRIBUTE_INDEX.get(param)
        if j is None:
            continue
        hour = int(time.split(":")[0])
        if 0 <= hour < N_HOURS:
            out[hour, j] = float(value) if value.strip() else np.nan
    return out


def read_archive(archive: Path) -> PhysioNetRecords:
    """Parse every set-a/<RecordID>.txt of the tarball in memory, in ascending record-id order."""
    values: dict[int, np.ndarray] = {}
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            path = _safe_member_name(member.name, archive)
            if not member.isfile() or path.suffix != ".txt":
                continue
            if not path.stem.isdigit():
                raise ArchiveError(f"{archive}: member {member.name!r} is not <RecordID>.txt")
            handle = tf.extractfile(member)
            if handle is None:
                raise ArchiveError(f"{archive}: cannot read member {member.name!r}")
            values[int(path.stem)] = _parse_record(handle.read().decode("utf-8"))
    if not values:
        raise ArchiveError(f"{archive}: no <RecordID>.txt records found")
    ids = np.array(sorted(values), dtype=np.int64)
    return PhysioNetRecords(values=np.stack([values[i] for i in ids]), record_ids=ids)


def load_records(
    data_dir: Path | str | None = None, cache_dir: Path | str | None = None
) -> PhysioNetRecords:
    """All 4000 records (48, 35) of set-a, parsed once and cached by the archive's SHA-256."""
    archive = Path(data_dir if data_dir is not None else default_data_dir()) / ARCHIVE
    if not archive.is_file():
        raise DataError(
            f"{archive} not found; set CSDI_DATA_DIR to the folder holding physionet2012/ "
            "(see `csdi data verify`)"
        )
    cache = Path(cache_dir if cache_dir is not None else default_cache_dir())
    cache_file = cache / f"physionet2012_seta_v{_CACHE_VERSION}_{sha256_file(archive)[:16]}.npz"
    if cache_file.is_file():
        with np.load(cache_file) as f:
            return PhysioNetRecords(values=f["values"], record_ids=f["record_ids"])
    records = read_archive(archive)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, values=records.values, record_ids=records.record_ids)
    tmp.replace(cache_file)  # atomic: concurrent loaders never see a partial file
    return records


def holdout_cond(observed: np.ndarray, missing_ratio: float, seed: int = 1) -> np.ndarray:
    """The reference's test pattern: (R, 48, 35) bool, observed minus int(n·ratio) per record.

    One legacy RandomState(seed) drawn in record order; records without observations draw
    nothing (the reference drops them after its draw consumed no random numbers).
    """
    if not 0.0 <= missing_ratio < 1.0:
        raise ValueError(f"missing_ratio must be in [0, 1); got {missing_ratio}")
    rs = np.random.RandomState(seed)
    cond = observed.copy()
    for r in range(observed.shape[0]):
        flat = cond[r].reshape(-1)  # (48·35,) view, C order as the reference
        obs_idx = np.flatnonzero(flat)
        if obs_idx.size == 0:
            continue
        hidden = rs.choice(obs_idx, int(obs_idx.size * missing_ratio), replace=False)
        flat[hidden] = False
    return cond


def fold_indices(n: int, fold: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, valid, test) record indices of the reference's 5-fold split."""
    if fold not in range(5):
        raise ValueError(f"fold must be one of 0..4; got {fold}")
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    start, end = int(fold * 0.2 * n), int((fold + 1) * 0.2 * n)
    test = order[start:end]
    remain = np.delete(order, np.arange(start, end))
    np.random.RandomState(seed).shuffle(remain)
    n_train = int(n * 0.7)
    return remain[:n_train], remain[n_train:], test


def load_physionet(
    data_dir: Path | str | None = None,
    *,
    missing_ratio: float,
    fold: int,
    seed: int = 1,
    normalisation: Literal["all", "train"] = "all",
    cache_dir: Path | str | None = None,
) -> PhysioNetSplits:
    """CSDI's PhysioNet protocol: train/valid/test windows (48 h × 35) of one fold, normalised."""
    if normalisation not in ("all", "train"):
        raise ValueError(f"normalisation must be 'all' or 'train'; got {normalisation!r}")
    records = load_records(data_dir, cache_dir)
    observed = ~np.isnan(records.values)  # (R, 48, 35)
    keep = observed.any(axis=(1, 2))
    values, observed = records.values[keep], observed[keep]
    cond = holdout_cond(observed, missing_ratio, seed)
    train_idx, valid_idx, test_idx = fold_indices(values.shape[0], fold, seed)
    stats = slice(None) if normalisation == "all" else train_idx
    scaler = fit_scaler(values[stats], observed[stats])
    hours = np.broadcast_to(np.arange(N_HOURS, dtype=np.float32), values.shape[:2]).copy()
    windows = WindowSet(
        values=scaler.transform(values, observed),  # NaN entries are unobserved → 0
        observed=observed,
        cond=cond,
        timestamps=hours,
        feature_names=ATTRIBUTES,
    )
    logger.info(
        "PhysioNet set-a: %d records, missing_ratio %.2f, fold %d, normalisation over %s records",
        values.shape[0], missing_ratio, fold, normalisation,
    )  # fmt: skip
    return PhysioNetSplits(
        train=windows.subset(train_idx),
        valid=windows.subset(valid_idx),
        test=windows.subset(test_idx),
        scaler=scaler,
        normalisation=normalisation,
    )
