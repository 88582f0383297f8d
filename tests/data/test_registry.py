"""`verify` names missing and altered files and where to get them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from csdi.data.registry import DATASETS, registry_name, sha256_file, verify


def test_verify_reports_missing_and_altered_files(tmp_path: Path) -> None:
    problems = verify(tmp_path, ["exchange_rate"])
    assert len(problems) == 1
    assert "missing" in problems[0] and "exchange_rate.txt.gz" in problems[0]
    assert "laiguokun/multivariate-time-series-data" in problems[0]
    target = tmp_path / "exchange_rate" / "exchange_rate.txt.gz"
    target.parent.mkdir()
    target.write_bytes(b"not the real file")
    problems = verify(tmp_path, ["exchange_rate"])
    assert len(problems) == 1 and "altered" in problems[0] and str(target) in problems[0]
    assert len(verify(tmp_path)) == sum(len(d.files) for d in DATASETS.values())
    with pytest.raises(ValueError, match="unknown datasets"):
        verify(tmp_path, ["electricity"])


def test_config_dataset_names_map_to_their_files(tmp_path: Path) -> None:
    """`data.dataset` values (etth1, physionet, …) verify the files their loader reads."""
    assert registry_name("etth1") == registry_name("ettm1") == registry_name("ett") == "ett"
    assert registry_name("physionet") == "physionet2012"
    problems = verify(tmp_path, ["etth1", "ettm1"])  # one entry, listed once
    assert len(problems) == len(DATASETS["ett"].files)
    assert all(p.startswith("ett: missing") for p in problems)
    served = [n for d in DATASETS.values() for n in d.loaded_as]
    assert len(served) == len(set(served))
    for name in ("physionet", "pm25", "etth1", "ettm1", "exchange_rate_nips"):
        assert name in served  # every benchmark loader of csdi.experiment has its files listed


def test_sha256_of_known_bytes(tmp_path: Path) -> None:
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_real_data_directory_verifies_clean() -> None:
    """Every dataset present (at least one of its files) in the data directory is intact."""
    data_dir = Path(os.environ.get("CSDI_DATA_DIR", "data/raw"))
    present = [
        name for name, d in DATASETS.items() if any((data_dir / f.path).is_file() for f in d.files)
    ]
    if not present:
        pytest.skip(f"no benchmark files under {data_dir} (set CSDI_DATA_DIR)")
    assert verify(data_dir, present) == []
