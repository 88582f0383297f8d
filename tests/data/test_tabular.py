"""Reading the user's own files: round trips and one clear error per kind of bad input."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csdi.data.errors import DataError
from csdi.data.tabular import frame_to_windows, read_table
from csdi.data.windows import stitch


def _write(tmp_path: Path, text: str, name: str = "series.csv") -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


WIDE = "date,a,b\n2024-01-01 02:00,3.5,\n2024-01-01 00:00,1,x2\n2024-01-01 01:00,,2e1\n"


def test_wide_round_trip_sorted_with_missing(tmp_path: Path) -> None:
    text = "date,a,b\n2024-01-01 02:00,3.5,\n2024-01-01 00:00,1,-2\n2024-01-01 01:00,NA,2e1\n"
    for name in ("s.csv", "s.csv.gz"):
        frame = read_table(_write(tmp_path, text, name))
        assert list(frame.columns) == ["a", "b"]
        assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.is_monotonic_increasing
        expected = np.array([[1.0, -2.0], [np.nan, 20.0], [3.5, np.nan]])
        np.testing.assert_array_equal(frame.to_numpy(), expected)
    parquet = tmp_path / "s.parquet"
    frame.to_parquet(parquet)
    pd.testing.assert_frame_equal(read_table(parquet), frame, check_freq=False)


def test_wide_time_column_detection(tmp_path: Path) -> None:
    # first column monotone numbers → time; otherwise the row number
    frame = read_table(_write(tmp_path, "t_hours,x\n0.5,1\n1.5,2\n2.5,3\n"))
    assert frame.index.tolist() == [0.5, 1.5, 2.5] and list(frame.columns) == ["x"]
    frame = read_table(_write(tmp_path, "x,y\n3,1\n1,2\n2,3\n"))
    assert frame.index.tolist() == [0, 1, 2] and list(frame.columns) == ["x", "y"]
    frame = read_table(_write(tmp_path, "x,when\n3,5\n1,4\n"), time_column="when")
    assert frame.index.tolist() == [4.0, 5.0] and frame["x"].tolist() == [1.0, 3.0]


def test_long_round_trip(tmp_path: Path) -> None:
    text = "time,variable,value\n1,hr,70\n0,hr,60\n0,temp,36.6\n2,temp,\n1,bp,120\n"
    frame = read_table(_write(tmp_path, text))
    assert list(frame.columns) == ["hr", "temp", "bp"]
    assert frame.index.tolist() == [0.0, 1.0, 2.0]
    expected = [[60, 36.6, np.nan], [70, np.nan, 120], [np.nan, np.nan, np.nan]]
    np.testing.assert_array_equal(frame.to_numpy(), np.array(expected))


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        (WIDE, {}, r"column 'b' has a non-numeric value 'x2' at line 3"),
        ("t,a,b\n0,1,inf\n1,2,3\n", {}, r"column 'b' has an infinite value 'inf' at line 2"),
        ("t,a,b\n0,1,2\n1,1e39,3\n", {}, r"column 'a' has the value '1e39' at line 3, beyond"),
        ("t,a,b,a\n0,1,2,3\n1,1,3,4\n", {}, r"column 'a' appears twice in the header"),
        ("time,a\n0,1\n1,2\n0,3\n", {}, r"duplicate time stamp 0 at line 4 \(also at line 2\)$"),
        ("t,name,a\n0,foo,1\n1,bar,2\n", {}, r"no number in column 'name': e.g. 'foo' at line 2"),
        ('t,a\n0,"1,234.5"\n1,9\n', {}, r"column 'a' has a non-numeric value '1,234.5' at"),
        ("t,a\n0,12 °C\n1,9 °C\n", {}, r"no number in column 'a': e.g. '12 °C' at line 2; write"),
        ("time,name\n0,foo\n1,bar\n", {"drop_non_numeric": True}, "no numeric feature columns"),
        ("a,b\n1,2\n", {"time_column": "ts"}, r"time column 'ts' not found; columns are"),
        ("time,a\n0,1\nnoon,2\n", {}, r"time column 'time' has a value 'noon' at line 3"),
        ("time,a\n", {}, "header but no data rows"),
        ("", {}, "file is empty"),
        ("time,variable,value\n0,a,1\n0,a,2\n", {}, r"duplicate time stamp 0 for variable 'a'"),
        (
            "time,variable,value\n0,a,1\n1,a,one\n",
            {},
            r"column 'value' has a non-numeric value 'one'",
        ),
    ],
)
def test_bad_input_gives_one_line_error(
    tmp_path: Path, text: str, kwargs: dict, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=message) as err:
        read_table(path, **kwargs)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_dropping_text_columns(tmp_path: Path, caplog) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"is a directory; give a data file"):
        read_table(tmp_path)
    path = _write(tmp_path, "t,name,a\n0,foo,1\n1,bar,2\n")
    with caplog.at_level(logging.WARNING):
        frame = read_table(path, drop_non_numeric=True)
    assert list(frame.columns) == ["a"] and "dropped non-numeric columns ['name']" in caplog.text


def test_frame_to_windows_covers_the_series_and_stitches_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(23, 3))
    data[rng.random(data.shape) < 0.2] = np.nan
    frame = pd.DataFrame(data, columns=["u", "v", "w"])
    windows, starts = frame_to_windows(frame, window=8, stride=5)
    assert starts.tolist() == [0, 5, 10, 15]  # last window aligned to the end (15 + 8 = 23)
    assert windows.feature_names == ("u", "v", "w")
    np.testing.assert_array_equal(windows.observed, ~np.isnan(data[starts[:, None] + np.arange(8)]))
    np.testing.assert_array_equal(windows.timestamps[1], np.arange(5, 13))
    back = stitch(np.where(windows.observed, windows.values, np.nan), starts, 23)  # (1, T, K)
    np.testing.assert_allclose(back[0], data.astype(np.float32), equal_nan=True)
    with pytest.raises(
        DataError, match=r"window of 30 steps is longer than the series \(23 rows\)"
    ):
        frame_to_windows(frame, window=30, stride=1)
    with pytest.raises(DataError, match="window must be at least 2"):
        frame_to_windows(frame, window=1, stride=1)


def test_semicolon_csv_with_decimal_commas(tmp_path: Path) -> None:
    """A European spreadsheet export: `;` between cells, `,` as the decimal mark."""
    path = tmp_path / "export.csv"
    path.write_text("time;a;b\n2024-01-01 00:00;1,5;2\n2024-01-01 01:00;;3,25\n")
    frame = read_table(path)
    assert list(frame.columns) == ["a", "b"]
    np.testing.assert_array_equal(frame["a"].to_numpy(), [1.5, np.nan])
    np.testing.assert_array_equal(frame["b"].to_numpy(), [2.0, 3.25])
    tabs = tmp_path / "tabs.csv"
    tabs.write_text("t\tx\n0\t1.5\n1\t2\n")
    assert read_table(tabs)["x"].tolist() == [1.5, 2.0]


def test_decimal_comma_file_quotes_a_bad_cell_as_written(tmp_path: Path) -> None:
    """Only cells that are numbers with a decimal comma are converted: a thousands separator
    ("1.234,5") is refused quoting the cell as the file has it, and a label keeps its comma."""
    path = tmp_path / "export.csv"
    path.write_text("time;a;b\n2024-01-01 00:00;1,5;2\n2024-01-01 01:00;1.234,5;3\n")
    with pytest.raises(DataError, match=r"column 'a' has a non-numeric value '1\.234,5' at line 3"):
        read_table(path)
    labels = tmp_path / "labels.csv"
    labels.write_text("time;a;site\n2024-01-01 00:00;1,5;North, A\n2024-01-01 01:00;2;North, A\n")
    with pytest.raises(DataError, match=r"no number in column 'site': e\.g\. 'North, A' at line 2"):
        read_table(labels)
    assert read_table(labels, drop_non_numeric=True)["a"].tolist() == [1.5, 2.0]


def test_rows_missing_from_a_regular_grid_come_back_empty(tmp_path: Path, caplog) -> None:
    """Hourly stamps with 02:00 and 05:00–06:00 absent: the three rows return as NaN rows
    at their times, the given ones unchanged and in place, with a warning naming the count
    and the first; the same for numeric time stamps (steps of 0.5), in the long layout too."""
    hours = [0, 1, 3, 4, 7, 8]
    text = "time,a,b\n" + "".join(f"2024-03-01 {h:02d}:00,{h},{10 * h}\n" for h in hours)
    with caplog.at_level(logging.WARNING):
        frame = read_table(_write(tmp_path, text))
    assert "3 time steps missing" in caplog.text and "2024-03-01 02:00:00" in caplog.text
    assert list(frame.index) == list(pd.date_range("2024-03-01", periods=9, freq="h"))
    assert frame.index.name == "time"
    np.testing.assert_array_equal(frame["a"].to_numpy(), [0, 1, np.nan, 3, 4, np.nan, np.nan, 7, 8])
    assert np.array_equal(frame["b"].dropna().to_numpy(), 10.0 * np.array(hours))
    numeric = read_table(_write(tmp_path, "t,a\n1.0,1\n1.5,2\n2.5,4\n3.0,5\n", "n.csv"))
    np.testing.assert_allclose(numeric.index.to_numpy(), [1.0, 1.5, 2.0, 2.5, 3.0])
    np.testing.assert_array_equal(numeric["a"].to_numpy(), [1, 2, np.nan, 4, 5])
    long = "time,variable,value\n" + "".join(f"2024-03-01 {h:02d}:00,a,{h}\n" for h in hours)
    assert len(read_table(_write(tmp_path, long, "long.csv"))) == 9


def test_irregular_time_stamps_are_left_as_they_are(tmp_path: Path, caplog) -> None:
    """Stamps on no common grid, or a grid that would more than double the rows, stay as
    given, with a warning that rows are taken as equally spaced."""
    for stamps in ([0.0, 1.0, 2.0, 2.7, 4.1, 5.0], [0.0, 1.0, 2.0, 3.0, 100.0]):
        caplog.clear()
        text = "t,a\n" + "".join(f"{t},{i}\n" for i, t in enumerate(stamps))
        with caplog.at_level(logging.WARNING):
            frame = read_table(_write(tmp_path, text))
        np.testing.assert_allclose(frame.index.to_numpy(), stamps)
        assert "not on one regular grid" in caplog.text
    regular = read_table(_write(tmp_path, "t,a\n0,1\n1,2\n2,3\n"))
    assert len(regular) == 3
    caplog.clear()
    days = pd.bdate_range("2024-03-01", periods=20)  # weekdays: the weekends are not gaps
    text = "date,a\n" + "".join(f"{d.date()},{i}\n" for i, d in enumerate(days))
    with caplog.at_level(logging.WARNING):
        frame = read_table(_write(tmp_path, text, "b.csv"))
    assert list(frame.index) == list(days) and caplog.text == ""
    holiday = read_table(_write(tmp_path, text.replace("2024-03-06,3\n", ""), "c.csv"))
    assert list(holiday.index) == list(days) and np.isnan(holiday.loc["2024-03-06", "a"])


def _hourly(stamps: list[str], header: str = "time") -> str:
    return f"{header},a\n" + "".join(f"{s},{i}\n" for i, s in enumerate(stamps))


def test_day_first_dates_are_read_day_first_or_refused(tmp_path: Path) -> None:
    """dd/mm/yyyy hours across the 13th: one format for the whole column (day first), rows in
    file order, no invented rows; every day ≤ 12 reads both ways in time order, so the column
    is refused until `date_order` says which; US mm/dd stays month first."""
    hours = pd.date_range("2024-01-11", periods=72, freq="h")  # 11–13 January
    frame = read_table(_write(tmp_path, _hourly([f"{h:%d/%m/%Y %H:%M}" for h in hours])))
    assert list(frame.index) == list(hours) and frame["a"].tolist() == list(range(72))
    us = read_table(_write(tmp_path, _hourly([f"{h:%m/%d/%Y %H:%M}" for h in hours]), "us.csv"))
    assert list(us.index) == list(hours)
    days = pd.date_range("2024-01-01", periods=12, freq="D")
    ambiguous = _write(tmp_path, _hourly([f"{d:%d/%m/%Y}" for d in days]), "d.csv")
    with pytest.raises(DataError, match=r"'02/01/2024' that read both day first and month first"):
        read_table(ambiguous)
    assert list(read_table(ambiguous, date_order="day_first").index) == list(days)
    assert read_table(ambiguous, date_order="month_first").index[1] == pd.Timestamp("2024-02-01")


def test_local_time_across_a_clock_change_is_read_in_utc(tmp_path: Path) -> None:
    """ISO stamps whose UTC offset changes (+01:00 → +02:00 on 31 March) are one hourly grid
    in UTC: no error, no rows added."""
    utc = pd.date_range("2024-03-31 00:00", periods=6, freq="h", tz="UTC")
    local = [f"{t.tz_convert('Europe/Berlin').isoformat()}" for t in utc]
    assert local[0].endswith("+01:00") and local[-1].endswith("+02:00")
    frame = read_table(_write(tmp_path, _hourly(local)))
    assert list(frame.index) == list(utc) and frame["a"].tolist() == list(range(6))


def test_local_time_repeating_an_hour_names_the_lines_and_the_remedy(tmp_path: Path) -> None:
    """Naive local time when the clock is set back (02:00 twice on 27 October) is refused with
    both lines and how to write the stamps, not a bare "duplicate"."""
    local = pd.date_range("2024-10-27 00:00", periods=6, freq="h", tz="Europe/Berlin")
    naive = [f"{t:%Y-%m-%d %H:%M}" for t in local.tz_localize(None)]
    assert naive[2] == naive[3]
    with pytest.raises(
        DataError, match=r"02:00:00 at line 5 \(also at line 4\); if these are local clock times"
    ):
        read_table(_write(tmp_path, _hourly(naive)))


def test_unsorted_rows_are_sorted_with_a_warning(tmp_path: Path, caplog) -> None:
    stamps = ["2024-01-01 02:00", "2024-01-01 00:00", "2024-01-01 01:00"]
    with caplog.at_level(logging.WARNING):
        frame = read_table(_write(tmp_path, _hourly(stamps)))
    assert "not in time order" in caplog.text and frame["a"].tolist() == [1, 2, 0]


def test_a_date_column_anywhere_is_the_time_and_model_features_never_are(tmp_path: Path) -> None:
    """Dates in an unnamed, unsorted column that is not first are the time; an increasing
    first column is the time unless it is one of the model's features (`exclude`)."""
    text = "a,stamp\n1,2024-01-01 01:00\n2,2024-01-01 00:00\n3,2024-01-01 02:00\n"
    frame = read_table(_write(tmp_path, text))
    assert frame.index.name == "stamp" and frame["a"].tolist() == [2, 1, 3]
    meter = _write(tmp_path, "kwh,b\n10,1\n12,2\n15,3\n", "m.csv")
    assert read_table(meter).index.name == "kwh"
    kept = read_table(meter, exclude=["kwh", "b"])
    assert list(kept.columns) == ["kwh", "b"] and kept.index.name == "step"


def test_integer_stamps_stay_integers_and_long_files_find_their_time(tmp_path: Path) -> None:
    epoch = [1_704_067_200 + 3600 * h for h in (0, 1, 3)]
    frame = read_table(_write(tmp_path, "t,a\n" + "".join(f"{t},1\n" for t in epoch)))
    assert frame.index.dtype == np.int64 and frame.index[2] == epoch[0] + 7200  # row added
    long = "ts,variable,value\n1,a,5\n0,a,4\n0,b,3\n"
    assert read_table(_write(tmp_path, long, "long.csv")).index.tolist() == [0, 1]
    tsv = _write(tmp_path, "t\tx\n0\t1.5\n1\t2\n", "series.tsv")
    assert read_table(tsv)["x"].tolist() == [1.5, 2.0]


def test_missing_value_codes_are_missing(tmp_path: Path) -> None:
    text = "t,a,b\n0,-999,1\n1,2,-999.0\n2,-9999,3\n"
    frame = read_table(_write(tmp_path, text), missing_values=(-999, -9999))
    np.testing.assert_array_equal(frame.to_numpy(), [[np.nan, 1], [2, np.nan], [np.nan, 3]])
    assert read_table(_write(tmp_path, text))["a"].tolist() == [-999, 2, -9999]


def test_text_columns_without_years_are_never_taken_for_the_time(tmp_path: Path) -> None:
    """Versions, fractions, clock times and month names parse as dates but are labels: with
    text columns dropped, the increasing first column stays the time."""
    for label in (["1.2.3", "1.2.4", "1.3.0"], ["3/4", "1/2", "3/4"], ["10:00", "10:00", "11:00"]):
        text = "t,x,label\n" + "".join(f"{i},{i},{v}\n" for i, v in enumerate(label))
        frame = read_table(_write(tmp_path, text), drop_non_numeric=True)
        assert frame.index.name == "t" and list(frame.columns) == ["x"]
    months = read_table(_write(tmp_path, "t,month,x\n0,Jan,1\n1,Feb,2\n"), drop_non_numeric=True)
    assert months.index.tolist() == [0, 1]
    later = "time,x\n01/02/2024,1\n13/02/2024,2\n25/02/2024,3\n"  # the 13th settles it
    assert read_table(_write(tmp_path, later)).index[0] == pd.Timestamp("2024-02-01")
    quarter_seconds = pd.date_range("2024-05-01", periods=8, freq="250ms").delete(3)
    text = "time,x\n" + "".join(f"{t.isoformat()},1\n" for t in quarter_seconds)
    ms = read_table(_write(tmp_path, text + ",\n,\n"))  # trailing empty spreadsheet rows
    assert len(ms) == 8 and np.isnan(ms["x"].iloc[3])  # a regular grid: the lost row is back


def test_separate_date_and_time_columns_are_one_time(tmp_path: Path) -> None:
    """A spreadsheet's export: Date (day first) and Time (HH:MM) columns make the time."""
    stamps = pd.date_range("2024-01-12 22:00", periods=5, freq="h")
    text = "Date;Time;x\n" + "".join(
        f"{t:%d.%m.%Y};{t:%H:%M};{i},5\n" for i, t in enumerate(stamps)
    )
    frame = read_table(_write(tmp_path, text))
    assert list(frame.index) == list(stamps) and list(frame.columns) == ["x"]
    assert frame["x"].tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]
