"""Where the real data (CI sets CSDI_DATA_DIR=../shared/data) and the golden fixtures
(tests/fixtures, or CSDI_FIXTURES_DIR) live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("CSDI_DATA_DIR", REPO / "data" / "raw"))
    if not (path / "physionet2012" / "set-a.tar.gz").is_file():
        pytest.skip(f"PhysioNet set-a not found under {path} (set CSDI_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    path = Path(os.environ.get("CSDI_FIXTURES_DIR", REPO / "tests" / "fixtures"))
    if not (path / "physionet_protocol_seed1.npz").is_file():
        pytest.skip(f"golden fixture physionet_protocol_seed1.npz not found under {path}")
    return path
