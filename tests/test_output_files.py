"""What `csdi impute` and `forecast` write: the table in the format its name asks for, the
samples under exactly the name given, quantile columns that never replace another column."""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csdi.cli_args import quantile_levels
from csdi.imputer import quantile_frame
from csdi.output_files import write_samples, write_table


def _frame() -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=4, freq="h", name="time")
    return pd.DataFrame({"a": [0.1 + 0.2, 1.0, 2.0, 3.0], "b": [1 / 3, 5.0, 6.0, 7.0]}, index=index)


def test_the_table_is_csv_gzip_or_parquet_by_its_name(tmp_path: Path) -> None:
    frame = _frame()
    write_table(frame, tmp_path / "out.csv")
    back = pd.read_csv(tmp_path / "out.csv", index_col="time", parse_dates=["time"])
    pd.testing.assert_frame_equal(back, frame, check_freq=False, rtol=0, atol=0)
    write_table(frame, tmp_path / "out.csv.gz")
    text = gzip.decompress((tmp_path / "out.csv.gz").read_bytes()).decode()
    assert text == (tmp_path / "out.csv").read_text()
    write_table(frame, tmp_path / "out.parquet")
    table = pd.read_parquet(tmp_path / "out.parquet")
    assert list(table.columns) == ["time", "a", "b"]
    pd.testing.assert_frame_equal(table.set_index("time"), frame, check_freq=False)
    assert (tmp_path / "out.parquet").stat().st_mode & 0o044 == 0o044  # readable by others


def test_samples_keep_their_name_and_load_without_pickle(tmp_path: Path) -> None:
    """np.savez alone would write `samples.dat.npz` for `samples.dat`: the name the output
    checks saw must be the file written."""
    samples = np.arange(24, dtype=np.float64).reshape(2, 4, 3)
    path = tmp_path / "samples.dat"
    write_samples(path, samples, ["a", "b", "c"], _frame().index)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.dat"]
    with np.load(path) as z:  # allow_pickle=False, numpy's default
        np.testing.assert_array_equal(z["samples"], samples.astype(np.float32))
        assert z["samples"].dtype == np.float32
        assert z["feature_names"].tolist() == ["a", "b", "c"]
        assert z["time"].tolist()[1] == "2024-01-01 01:00:00"


def test_quantile_columns_name_their_level_in_full_and_never_replace_a_column() -> None:
    index = pd.RangeIndex(2)
    median = np.zeros((2, 2))
    quantiles = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 2.0)])  # (Q, T, K)
    out = quantile_frame(median, quantiles, (0.1234567, 0.1234568), index, ["a", "b"])
    assert list(out.columns)[2:] == ["a_q0.1234567", "b_q0.1234567", "a_q0.1234568", "b_q0.1234568"]
    assert out["a_q0.1234568"].tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match=r"quantile column 'a_q0.5' would have the name"):
        quantile_frame(median, quantiles[:1], (0.5,), index, ["a", "a_q0.5"])


def test_quantile_levels_are_sorted_once_each() -> None:
    assert quantile_levels("0.95,0.05,0.5,0.5") == (0.05, 0.5, 0.95)
    with pytest.raises(argparse.ArgumentTypeError, match="at least one quantile level"):
        quantile_levels(" , ")
    with pytest.raises(argparse.ArgumentTypeError, match="strictly between 0 and 1"):
        quantile_levels("0,0.5")
