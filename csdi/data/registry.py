"""Known benchmark datasets: what each is, its protocol, and the raw files it needs.

Checksums are the SHA-256 of the files as distributed (see data/README.md); `verify` names
every missing or altered file and where to obtain it, and `csdi.data.fetch` downloads a file
from its `url`: the raw-download address of the public snapshot that holds these exact bytes,
or "" where none does (the file was repacked, gzip-recompressed or derived here).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataFile:
    """One raw file: path relative to the data directory, its SHA-256 and where to get it.

    `url` gives exactly these bytes ("" if no public URL does; `source` then says how the file
    was made from its public source)."""

    path: str
    sha256: str
    source: str
    url: str


@dataclass(frozen=True)
class DatasetInfo:
    """A group of raw files; `loaded_as`: the `data.dataset` config values that read them."""

    description: str
    protocol: str
    files: tuple[DataFile, ...]
    loaded_as: tuple[str, ...] = ()


_CSDI_RDE = "GitHub yunxichu/CSDI-RDE @ 22e9d725cac3d5b66132296ff1c7e922984297d4"
_ETT = "GitHub zhouhaoyi/ETDataset @ 1d16c8f4 (ETT-small/), gzip-compressed"
_ETTM = "GitHub ljnvs/HiCR-Mamba @ d472c100 datasets/ETT-small/ (identical to zhouhaoyi/ETDataset)"
_HICR = "ljnvs/HiCR-Mamba/d472c100956ed4373e9ca3700481ce88f8f1e4dd/datasets/ETT-small"
_RAW = "https://raw.githubusercontent.com"

DATASETS: dict[str, DatasetInfo] = {
    "physionet2012": DatasetInfo(
        description="PhysioNet Challenge 2012 set-a: 4000 ICU stays, 35 variables, 48 hourly bins",
        protocol="CSDI imputation: hold out 10/50/90 % of observed values (seed 1), 5 folds",
        loaded_as=("physionet",),
        files=(
            DataFile(
                "physionet2012/set-a.tar.gz",
                "abcd119bae0f9f98d5e63b7bce5b2d37c64328e7c1acacab3836d17787d841df",
                f"{_CSDI_RDE}, data/physio/set-a/*.txt packed as set-a/<RecordID>.txt "
                "(original: physionet.org/content/challenge-2012/1.0.0/)",
                "",  # a tarball rebuilt from the repository's 4000 files
            ),
            DataFile(
                "physionet2012/Outcomes-a.txt",
                "2613ea60ccda29f87571a7d6b09ad130858a8ccd66325bd073365925026883c2",
                "GitHub AbdelrahmanManz/ICU-Mortality-Predictor @ 7037a4f8, Outcomes-a.txt",
                f"{_RAW}/AbdelrahmanManz/ICU-Mortality-Predictor/"
                "7037a4f84275e146be51bae44ceaa11e687269b8/Outcomes-a.txt",
            ),
        ),
    ),
    "pm25": DatasetInfo(
        description="Beijing PM2.5, 36 stations (STMVL), hourly 2014-05 to 2015-04",
        protocol="CSDI imputation: test months 3/6/9/12, windows of 36, mix masking, µg/m³",
        loaded_as=("pm25",),
        files=(
            DataFile(
                "pm25_stmvl/pm25_ground.txt.gz",
                "6fc82641ea627003abe0edfb79eb3bac15bf704b530513f2e236f16e46d50ab6",
                f"{_CSDI_RDE}, data/pm25/Code/STMVL/SampleData/pm25_ground.txt, gzip-compressed",
                "",
            ),
            DataFile(
                "pm25_stmvl/pm25_missing.txt.gz",
                "b6b0c8b2e50d4351c66c42de04de8b8d3c093083d5299deff7b4652f6d2ea208",
                f"{_CSDI_RDE}, data/pm25/Code/STMVL/SampleData/pm25_missing.txt, gzip-compressed",
                "",
            ),
            DataFile(
                "pm25_stmvl/pm25_latlng.txt",
                "7e33dc58c12b3c85fd474cccc9ae09196dc6abcbb1ce36e4d05f402489c39a12",
                f"{_CSDI_RDE}, data/pm25/Code/STMVL/SampleData/pm25_latlng.txt",
                f"{_RAW}/yunxichu/CSDI-RDE/22e9d725cac3d5b66132296ff1c7e922984297d4/"
                "data/pm25/Code/STMVL/SampleData/pm25_latlng.txt",
            ),
            DataFile(
                "pm25_stmvl/pm25_train_meanstd.csv",
                "243c2145902c3abbf70d24ec47770627a769a8a3454377d864a48250c5b8a262",
                "derived: per-station mean and sample std of pm25_ground.txt over months "
                "1, 2, 4, 5, 7, 8, 10, 11 (see data/README.md)",
                "",
            ),
        ),
    ),
    "ett": DatasetInfo(
        description="ETT-small transformer temperature (ETTh1/2 hourly, ETTm1/2 every 15 min)",
        protocol="Informer forecasting: borders 8640/11520/14400 (×4 for m), horizons 96…720",
        loaded_as=("etth1", "ettm1"),
        files=(
            DataFile(
                "ett/ETTh1.csv.gz",
                "3c56c865b8f6fc9b760a07f055ff8a993d3cf2a747235dc382b98821ed35f029",
                _ETT,
                "",
            ),
            DataFile(
                "ett/ETTh2.csv.gz",
                "a549927e8cd45bd1c20a8ec51529cd037bf6da38fe37c2ba3dc0e9c8446d6cb5",
                _ETT,
                "",
            ),
            DataFile(
                "ett/ETTm1.csv.gz",
                "ca45123028f1acad120b5f971ca64594746aa9b881d56cdff589ee9aa6cdbd8f",
                _ETTM,
                f"{_RAW}/{_HICR}/ETTm1.csv.gz",
            ),
            DataFile(
                "ett/ETTm2.csv.gz",
                "40da2dc79c8f7140eab4f3456debdf85fe8baca5d626280f1ba50181be8ae4ed",
                _ETTM,
                f"{_RAW}/{_HICR}/ETTm2.csv.gz",
            ),
        ),
    ),
    "exchange_rate": DatasetInfo(
        description="Daily exchange rates of 8 currencies, 1990–2016 (LSTNet version)",
        protocol="LSTNet 60/20/20 split, or long-horizon 70/10/20",
        files=(
            DataFile(
                "exchange_rate/exchange_rate.txt.gz",
                "6a4fbb561dcdee43f071a83badbeec9223a335552278348656738b556f1c2e9d",
                "GitHub laiguokun/multivariate-time-series-data @ 7f402f18, "
                "exchange_rate/exchange_rate.txt.gz",
                f"{_RAW}/laiguokun/multivariate-time-series-data/"
                "7f402f185cc2435b5e66aed13a3b560ed142e023/exchange_rate/exchange_rate.txt.gz",
            ),
        ),
    ),
    "exchange_rate_nips": DatasetInfo(
        description="Exchange rates, GluonTS layout: 8 series, 5 rolling test windows",
        protocol="GP-copula / TimeGrad forecasting: prediction length 30, CRPS-sum",
        loaded_as=("exchange_rate_nips",),
        files=(
            DataFile(
                "exchange_rate/exchange_rate_nips.tar.gz",
                "83f3cf364ae7854b0a74ef9825c47b8314896de820de877fd466cdffd94027d1",
                "GitHub isenilov/gluon-ts branch mv_release @ 442bd4ff, "
                "datasets/exchange_rate_nips.tar.gz",
                f"{_RAW}/isenilov/gluon-ts/442bd4ffffa4a0fcf9ae7aa25db9632fbe58a7ea/"
                "datasets/exchange_rate_nips.tar.gz",
            ),
        ),
    ),
}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def registry_name(name: str) -> str:
    """The registry entry of `name`: an entry's own name or a `data.dataset` value it serves."""
    if name in DATASETS:
        return name
    for entry, info in DATASETS.items():
        if name in info.loaded_as:
            return entry
    choices = sorted({*DATASETS, *(n for d in DATASETS.values() for n in d.loaded_as)})
    raise ValueError(f"unknown datasets ['{name}']; choose from {choices}")


def verify(data_dir: Path | str, names: list[str] | None = None) -> list[str]:
    """One line per missing or altered file of the named datasets (all if None); [] if all good.

    A name is a registry entry ("ett") or a `data.dataset` config value it serves ("etth1")."""
    data_dir = Path(data_dir)
    names = list(DATASETS) if names is None else list(dict.fromkeys(map(registry_name, names)))
    problems = []
    for name in names:
        for f in DATASETS[name].files:
            path = data_dir / f.path
            if not path.is_file():
                problems.append(f"{name}: missing {path}; obtain it from {f.source}")
            elif sha256_file(path) != f.sha256:
                problems.append(
                    f"{name}: {path} is altered (SHA-256 differs from {f.sha256[:12]}…); "
                    f"obtain it again from {f.source}"
                )
    return problems
