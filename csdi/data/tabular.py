"""The user's own series: a delimited text file (.csv, .tsv, .txt, gzipped too) or parquet file →
a clean float frame → windows.

Layouts: wide (a time column plus one column per feature) or long (time, variable, value).
The delimiter (`,`, `;`, tab, `|`) and a decimal comma are detected from the first lines, as
spreadsheet exports need. Blank / NA cells are missing. Anything else that is not a number is
an error naming the file, column, value and line, never silently coerced; text columns are
rejected (or dropped on request). Rows missing from a regular time grid (a logger that was
off) are put back as empty rows, so they are imputed and the model's steps are equal times.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from csdi.data.errors import DataError
from csdi.data.scaling import Scaler, beyond_range_message
from csdi.data.windows import WindowSet, window_starts

logger = logging.getLogger(__name__)

TIME_NAMES = ("time", "date", "datetime", "timestamp")
#: a clock time of day, HH:MM or HH:MM:SS(.fff): a spreadsheet's separate Time column
CLOCK_TIME = r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?"
#: how a date such as 02/01/2024 is read: "auto" takes the reading in time order
DateOrder = Literal["auto", "day_first", "month_first"]
VARIABLE_NAMES = ("variable", "feature", "parameter", "name")
VALUE_NAMES = ("value",)
#: The most empty rows `regular_grid` adds, as a multiple of the rows the file has: beyond it
#: the time stamps are taken as irregular rather than a grid with long holes
MAX_ADDED_ROWS_FACTOR = 1.0
#: one day in nanoseconds: the step of daily stamps
DAY_NS = 86_400e9
#: parquet files (`_read_raw`; `output_files.write_table` writes them for these names)
PARQUET_SUFFIXES = (".parquet", ".pq")
#: delimited text files `_sniff` reads (the delimiter is detected, whatever the name says)
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
#: Largest finite 32-bit float: the model's arithmetic (a larger value would become inf)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _sniff(path: Path) -> tuple[str, str]:
    """(delimiter, decimal mark) of a CSV from its first lines: `,`, `;`, tab or `|`; a decimal
    comma when the delimiter is not a comma and digits sit either side of a comma."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", errors="replace") as f:
        sample = "".join(line for _, line in zip(range(50), f, strict=False))
    try:
        sep = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","  # one column, or nothing to tell by
    decimal = "," if sep != "," and re.search(r"\d,\d", sample) else "."
    return sep, decimal


def _repeated_header_name(path: Path, sep: str) -> str | None:
    """The first column name a CSV's header line gives twice (pandas would silently rename
    the second copy), or None."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", errors="replace") as f:
        header = next(csv.reader([f.readline()], delimiter=sep), [])
    seen: set[str] = set()
    for name in (h.strip().lstrip("\ufeff") for h in header):
        if name in seen:
            return name
        seen.add(name)
    return None


def _comma_decimals(col: pd.Series) -> pd.Series:
    """A text column of a decimal-comma file: the cells that read as numbers with the comma as
    the decimal mark, written with a point; every other cell (a label, a date, "1.234,5") as the
    file has it, so an error quotes what the user sees."""
    dotted = col.str.replace(",", ".", regex=False)
    numeric = pd.to_numeric(dotted.str.strip(), errors="coerce").notna()
    return dotted.where(numeric, col)


def _read_raw(path: Path) -> pd.DataFrame:
    """All cells as text (CSV) or as stored (parquet); NA tokens and blanks become NaN."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give a data file (.csv, .csv.gz, .parquet)")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    name = path.name.lower()
    try:
        if name.endswith(TEXT_SUFFIXES):
            sep, decimal = _sniff(path)
            repeated = _repeated_header_name(path, sep)
            if repeated is not None:
                raise DataError(f"{path}: column {repeated!r} appears twice in the header")
            raw = pd.read_csv(path, dtype=str, skipinitialspace=True, sep=sep)
            if decimal == ",":  # cells are text here; numbers are parsed later
                raw = raw.apply(_comma_decimals)
        elif name.endswith(PARQUET_SUFFIXES):
            raw = pd.read_parquet(path)
            if not isinstance(raw.index, pd.RangeIndex):  # a stored index is the time column
                raw = raw.reset_index()
        else:
            raise DataError(
                f"{path}: unsupported file type; use .csv, .tsv or .txt (each also .gz), or "
                ".parquet"
            )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (OSError, ValueError, pd.errors.ParserError) as e:
        if isinstance(e, DataError):
            raise
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot be read ({first_line})") from e
    filled = np.flatnonzero(raw.notna().any(axis=1).to_numpy())
    raw = raw.iloc[: filled[-1] + 1] if len(filled) else raw.iloc[:0]  # trailing ",,," lines
    if raw.shape[0] == 0:
        raise DataError(f"{path}: file has a header but no data rows")
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw


def _line(path: Path, row: int) -> str:
    """Where data row `row` (0-based) is in the file, as a user would look for it."""
    return f"row {row}" if path.name.lower().endswith(PARQUET_SUFFIXES) else f"line {row + 2}"


def _as_numbers(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(float values with NaN missing, bool mask of non-missing cells that are not numbers)."""
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(col), bool)
    text = col.astype("string").str.strip()
    nums = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return nums, text.notna().to_numpy() & np.isnan(nums)


def _numeric_column(
    path: Path,
    col: pd.Series,
    numbers: tuple[np.ndarray, np.ndarray],
    missing: Sequence[float] = (),
) -> np.ndarray:
    """A feature column as floats (`numbers`: its `_as_numbers`), NaN where blank or equal to a
    `missing` code (-999); a cell that is neither blank nor a number is an error."""
    nums, bad = numbers
    nums = np.where(np.isin(nums, np.asarray(missing, dtype=np.float64)), np.nan, nums)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column {col.name!r} has a non-numeric value {col.iloc[i]!r} at "
            f"{_line(path, i)}"
        )
    inf = np.isinf(nums)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise DataError(
            f"{path}: column {col.name!r} has an infinite value {col.iloc[i]!r} at {_line(path, i)}"
        )
    huge = np.abs(nums) > FLOAT32_MAX
    if huge.any():
        i = int(np.flatnonzero(huge)[0])
        raise DataError(
            f"{path}: column {col.name!r} has the value {col.iloc[i]!r} at {_line(path, i)}, "
            "beyond the 32-bit range (±3.4e38) the model computes in"
        )
    return nums


def _text_columns(raw: pd.DataFrame) -> list[str]:
    """The columns with non-missing cells none of which is a number (labels, categories)."""
    return [str(c) for c in raw.columns if _is_text(_as_numbers(raw[c]))]


def _is_text(numbers: tuple[np.ndarray, np.ndarray]) -> bool:
    """`_as_numbers` of a column with non-missing cells none of which is a number."""
    nums, bad = numbers
    return bool(bad.any() and np.isnan(nums).all())


def _to_dates(text: pd.Series, **kwargs: object) -> pd.DatetimeIndex | None:
    """pd.to_datetime of the column, None when some value is no date. Stamps with several UTC
    offsets (local time across a daylight-saving change) are converted to UTC."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format": value by value
        for utc in (False, True):
            try:
                return pd.DatetimeIndex(pd.to_datetime(text, utc=utc, **kwargs))
            except (ValueError, TypeError, OverflowError) as e:
                message = str(e).lower()
                if utc or not ("timezone" in message or "tz-" in message):
                    return None
    return None


def _read_dates(path: Path, col: pd.Series, date_order: DateOrder) -> pd.DatetimeIndex | None:
    """The column as dates: ISO 8601 (year first) as it stands; otherwise day-first and
    month-first readings with one format for the whole column (the first value's). When both
    fit and differ (every day ≤ 12), the one in time order is taken; when both or neither
    are, the column is ambiguous and refused (`date_order` settles it). Values in several
    formats are read one by one, and only when the two orders agree on every value."""
    text = col.astype(str).str.strip()
    iso = _to_dates(text, format="ISO8601")
    if iso is not None:
        return iso
    orders = {"auto": (False, True), "month_first": (False,), "day_first": (True,)}[date_order]
    readings = {d: r for d in orders if (r := _to_dates(text, dayfirst=d)) is not None}
    if not readings:  # no one format fits: value by value, where the order cannot matter
        month, day = (_to_dates(text, dayfirst=d, format="mixed") for d in (False, True))
        if month is None or day is None:
            return None
        if month.equals(day):
            return month
        readings = {False: month, True: day}
        date_order = "auto"  # a stated order cannot settle values in several formats
    if len(readings) == 1 or readings[False].equals(readings[True]):
        return next(iter(readings.values()))
    in_order = [dayfirst for dayfirst, r in readings.items() if r.is_monotonic_increasing]
    if len(in_order) == 1 and date_order == "auto":
        logger.info(
            "%s: time column %r read %s (the reading in time order)",
            path,
            col.name,
            "day first" if in_order[0] else "month first",
        )
        return readings[in_order[0]]
    i = int(np.flatnonzero(readings[False] != readings[True])[0])
    raise DataError(
        f"{path}: time column {col.name!r} has dates like {text.iloc[i]!r} that read both day "
        "first and month first; write them as YYYY-MM-DD, or give --set data.date_order="
        "day_first (or month_first)"
    )


def _parse_times(
    path: Path, col: pd.Series, strict: bool, date_order: DateOrder = "auto"
) -> pd.Index | None:
    """Numbers (integers kept integral) or dates as a time index; None (if not strict) when
    the column is neither."""
    missing = col.isna().to_numpy()
    if missing.any():
        if not strict:
            return None
        i = int(np.flatnonzero(missing)[0])
        raise DataError(f"{path}: time column {col.name!r} is blank at {_line(path, i)}")
    if pd.api.types.is_datetime64_any_dtype(col):
        return pd.DatetimeIndex(col, name=col.name)
    nums, bad = _as_numbers(col)
    if not bad.any() and np.isfinite(nums).all():
        whole = np.all(nums == np.round(nums)) and np.abs(nums).max() < 2**53
        return pd.Index(nums.astype(np.int64) if whole else nums, name=col.name)
    dates = _read_dates(path, col, date_order)
    if dates is not None:
        return dates.rename(col.name)
    if not strict:
        return None
    for i, v in enumerate(col.astype(str)):
        if not np.isnan(pd.to_numeric(v, errors="coerce")):
            continue
        if _to_dates(pd.Series([v]), format="mixed") is None:
            raise DataError(
                f"{path}: time column {col.name!r} has a value {v!r} at {_line(path, i)} "
                "that is neither a number nor a date"
            )
    raise DataError(f"{path}: time column {col.name!r} mixes numbers and dates")


def _find_time_column(
    path: Path,
    raw: pd.DataFrame,
    time_column: str | None,
    texts: Sequence[str],
    exclude: Sequence[str] = (),
    date_order: DateOrder = "auto",
) -> pd.Index | None:
    """Time index of the named column, else of one named time/date/datetime/timestamp, else
    of the first column of distinct dates with years (in any order), else of the first column
    if it holds increasing numbers; None: no time column (the row number is the time).
    `texts`: the text columns (`_text_columns`); those in `exclude` (a model's features) are
    never guessed."""
    if time_column is not None:
        if time_column not in raw.columns:
            raise DataError(
                f"{path}: time column {time_column!r} not found; columns are {list(raw.columns)}"
            )
        return _parse_times(path, raw[time_column], strict=True, date_order=date_order)
    candidates = [c for c in raw.columns if c not in exclude]
    for c in candidates:
        if c.lower() in TIME_NAMES:
            return _parse_times(path, raw[c], strict=True, date_order=date_order)
    first = raw.columns[0]
    texts = [c for c in texts if c in candidates]
    for c in texts:  # dates with years: labels, versions, clock times, month names have none
        if not raw[c].dropna().astype(str).str.contains(r"\d{4}").all():
            continue
        try:
            times = _parse_times(path, raw[c], strict=False, date_order=date_order)
        except DataError:
            if c == first:  # ambiguous dates in the first column: the user must say which
                raise
            continue
        if isinstance(times, pd.DatetimeIndex) and times.is_unique:
            logger.info("%s: column %r taken as the time (--time-column names another)", path, c)
            return times
    if first in candidates and first not in texts:  # increasing numbers in the first column
        times = _parse_times(path, raw[first], strict=False, date_order=date_order)
        if times is not None and times.is_monotonic_increasing:
            logger.info(
                "%s: column %r taken as the time (--time-column names another)", path, first
            )
            return times
    return None


def _check_unique_times(path: Path, times: pd.Index) -> None:
    """Refuse a time stamp given twice (`times` in file order), naming both lines; for dates,
    a likely cause — local time whose clock was set back an hour — and its remedy."""
    dup = times.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(times == times[i])[0])
        hint = (
            "; if these are local clock times set back an hour (the end of daylight saving), "
            "write them in UTC or with their UTC offset, e.g. 2024-10-27 02:00+02:00"
            if isinstance(times, pd.DatetimeIndex) and times.tz is None
            else ""
        )
        raise DataError(
            f"{path}: duplicate time stamp {times[i]!s} at {_line(path, i)} (also at "
            f"{_line(path, first)}){hint}"
        )


def _first_text_cell(path: Path, col: pd.Series) -> str:
    """'e.g. '1,234.5' at line 2': the first cell of a text column, as the user would find it."""
    i = int(col.notna().to_numpy().argmax())
    return f"{col.name!r}: e.g. {col.iloc[i]!r} at {_line(path, i)}"


def _join_clock(
    path: Path, raw: pd.DataFrame, times: pd.Index | None, exclude: Sequence[str]
) -> tuple[pd.Index | None, str | None]:
    """Separate Date and Time columns (a spreadsheet's export): when the time column holds
    dates at midnight that repeat, and another column holds clock times (HH:MM[:SS]) on every
    row, the time is their sum; returns it and the clock column's name (None: as given)."""
    if not isinstance(times, pd.DatetimeIndex) or times.is_unique:
        return times, None
    if (times != times.normalize()).any():
        return times, None
    for c in raw.columns:
        if c == times.name or c in exclude:
            continue
        text = raw[c].astype("string").str.strip()
        if text.isna().any() or not text.str.fullmatch(CLOCK_TIME).all():
            continue
        seconds = text.where(text.str.count(":") == 2, text + ":00")  # HH:MM → HH:MM:00
        joined = times + pd.to_timedelta(seconds.to_numpy(dtype=str))
        logger.info("%s: the time is column %r plus the clock times of %r", path, times.name, c)
        return joined.rename(times.name), c
    return times, None


def _wide(
    path: Path,
    raw: pd.DataFrame,
    time_column: str | None,
    drop: bool,
    exclude: Sequence[str],
    date_order: DateOrder,
    missing: Sequence[float],
) -> pd.DataFrame:
    numbers = {c: _as_numbers(raw[c]) for c in raw.columns}  # each column parsed once
    texts = [c for c in raw.columns if _is_text(numbers[c])]
    times = _find_time_column(path, raw, time_column, texts, exclude, date_order)
    times, clock = _join_clock(path, raw, times, exclude)
    features = [c for c in raw.columns if (times is None or c != times.name) and c != clock]
    text = [c for c in features if c in texts]
    if text and not drop:
        raise DataError(
            f"{path}: no number in column {_first_text_cell(path, raw[text[0]])}"
            + (f" (and {len(text) - 1} more such columns)" if len(text) > 1 else "")
            + "; write numbers without units or thousands separators, or drop text columns "
            "with --drop-non-numeric (drop_non_numeric=True in Python)"
        )
    if text:
        logger.warning("%s: dropped non-numeric columns %s", path, text)
    features = [c for c in features if c not in text]
    if not features:
        raise DataError(f"{path}: no numeric feature columns (columns: {list(raw.columns)})")
    data = {c: _numeric_column(path, raw[c], numbers[c], missing) for c in features}
    index = times if times is not None else pd.RangeIndex(len(raw), name="step")
    frame = pd.DataFrame(data, index=index, columns=features)
    _check_unique_times(path, frame.index)
    if not frame.index.is_monotonic_increasing:
        logger.warning(
            "%s: the rows are not in time order; they are read, and written out, sorted by %r",
            path,
            frame.index.name,
        )
    return frame.sort_index(kind="stable")


def _pick(raw: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((c for c in raw.columns if c.lower() in names), None)


def _long(
    path: Path,
    raw: pd.DataFrame,
    time_column: str | None,
    date_order: DateOrder,
    missing: Sequence[float],
) -> pd.DataFrame:
    variable, value = _pick(raw, VARIABLE_NAMES), _pick(raw, VALUE_NAMES)
    if variable is None or value is None:
        raise DataError(
            f"{path}: long layout needs columns (time, variable, value); got {list(raw.columns)}"
        )
    rest = raw.drop(columns=[variable, value])
    if rest.shape[1] == 0:
        raise DataError(f"{path}: long layout needs a time column; got {list(raw.columns)}")
    if time_column is None and rest.shape[1] == 1:  # the one column left is the time
        time_column = str(rest.columns[0])
    times = _find_time_column(path, rest, time_column, _text_columns(rest), date_order=date_order)
    if times is None:
        raise DataError(f"{path}: no time column found among {list(rest.columns)}")
    names = raw[variable].astype("string").str.strip()
    if names.isna().any():
        i = int(np.flatnonzero(names.isna().to_numpy())[0])
        raise DataError(f"{path}: column {variable!r} is blank at {_line(path, i)}")
    cells = pd.DataFrame(
        {
            "time": times,
            "variable": names.to_numpy(),
            "value": _numeric_column(path, raw[value], _as_numbers(raw[value]), missing),
        }
    )
    dup = cells.duplicated(["time", "variable"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"{path}: duplicate time stamp {cells['time'].iloc[i]!s} for variable "
            f"{cells['variable'].iloc[i]!r} at {_line(path, i)}"
        )
    frame = cells.pivot(index="time", columns="variable", values="value")
    frame = frame[list(dict.fromkeys(cells["variable"]))]  # features in order of appearance
    frame.columns = pd.Index([str(c) for c in frame.columns])
    frame.index.name = times.name
    return frame.sort_index(kind="stable").astype(np.float64)


def read_table(
    path: Path | str,
    *,
    time_column: str | None = None,
    layout: Literal["auto", "wide", "long"] = "auto",
    drop_non_numeric: bool = False,
    exclude: Sequence[str] = (),
    date_order: DateOrder = "auto",
    missing_values: Sequence[float] = (),
) -> pd.DataFrame:
    """Read a series: index = sorted time stamps, columns = features, float64, NaN missing.

    Wide: the time column is `time_column`, else one named time/date/datetime/timestamp, else
    the first column of distinct dates, else the first column if it holds increasing numbers,
    else the row number; `exclude` (a trained model's features) are never taken for the time.
    Dates that read both day first and month first follow `date_order` (`_read_dates`); a
    value equal to one of `missing_values` (a logger's -999) is missing. Long:
    columns (time, variable, value); `auto` picks long when a variable and a value column exist.
    Raises DataError (one line naming file, column, value and line) on bad input.
    """
    path = Path(path)
    if layout not in ("auto", "wide", "long"):
        raise ValueError(f"layout must be 'auto', 'wide' or 'long'; got {layout!r}")
    raw = _read_raw(path)
    if layout == "auto":
        is_long = raw.shape[1] == 3 and _pick(raw, VARIABLE_NAMES) and _pick(raw, VALUE_NAMES)
        layout = "long" if is_long else "wide"
    if layout == "long":
        return regular_grid(path, _long(path, raw, time_column, date_order, missing_values))
    frame = _wide(path, raw, time_column, drop_non_numeric, exclude, date_order, missing_values)
    return regular_grid(path, frame)


def regular_grid(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (sorted, unique time stamps) with the rows a regular grid lacks added, empty.

    The grid's step is the most common difference between consecutive time stamps (dates or
    numbers). When every difference is a whole multiple of it, the missing steps are inserted
    as all-NaN rows and a warning names how many and the first; the model then sees equal
    times between its steps, and `csdi impute` fills the lost rows too. Daily stamps on
    weekdays only are business days: their grid skips weekends (a holiday comes back as a
    missing weekday). Time stamps on no grid, or a grid that would more than double the rows
    (`MAX_ADDED_ROWS_FACTOR`), are left as they are, with a warning that rows are taken as
    equally spaced."""
    index = frame.index
    if len(index) < 3 or isinstance(index, pd.RangeIndex):
        return frame
    found = _grid_of(index)
    if found is not None and len(found[0]) == len(index):
        return frame
    if found is None or len(found[0]) - len(index) > MAX_ADDED_ROWS_FACTOR * len(index):
        logger.warning(
            "%s: the time stamps are not on one regular grid (or its gaps would more than "
            "double the rows); rows are taken as equally spaced",
            path,
        )
        return frame
    grid, rows = found
    full = pd.DataFrame(np.nan, index=grid, columns=frame.columns)
    full.iloc[rows] = frame.to_numpy(dtype=np.float64)
    lacking = np.setdiff1d(np.arange(len(grid)), rows)
    logger.warning(
        "%s: %d time steps missing from the grid added as empty rows (the first at %s)",
        path,
        len(lacking),
        grid[lacking[0]],
    )
    return full


def _grid_of(index: pd.Index) -> tuple[pd.Index, np.ndarray] | None:
    """The regular grid through sorted stamps and each stamp's row in it (None: no grid)."""
    if isinstance(index, pd.DatetimeIndex):
        ns = index.as_unit("ns").asi8  # whatever unit was parsed; int64 until made relative
        stamps = (ns - ns[0]).astype(np.float64)  # float64 of epoch ns would round at 256 ns
    elif pd.api.types.is_numeric_dtype(index):
        stamps = index.to_numpy(dtype=np.float64)
    else:
        return None
    values, counts = np.unique(np.diff(stamps), return_counts=True)
    step = float(values[counts.argmax()])
    if step <= 0:
        return None
    if isinstance(index, pd.DatetimeIndex) and step == DAY_NS and (index.day_of_week < 5).all():
        days = pd.bdate_range(index[0], index[-1], normalize=False, name=index.name)
        rows = days.get_indexer(index)
        if (rows >= 0).all():  # business days: weekends are no gaps
            return days, rows
    positions = (stamps - stamps[0]) / step  # (T,) steps since the first row
    rows = np.round(positions).astype(np.int64)
    if not np.allclose(positions, rows, rtol=0, atol=1e-6):
        return None
    n_rows = int(rows[-1]) + 1
    if isinstance(index, pd.DatetimeIndex):
        grid: pd.Index = pd.date_range(index[0], periods=n_rows, freq=pd.Timedelta(int(step)))
    else:
        grid = pd.Index(stamps[0] + step * np.arange(n_rows))
        if pd.api.types.is_integer_dtype(index) and step == round(step):
            grid = grid.astype(np.int64)  # integer stamps stay integers
    grid.name = index.name
    return grid, rows


def frame_to_windows(
    frame: pd.DataFrame, *, window: int, stride: int
) -> tuple[WindowSet, np.ndarray]:
    """Cut a frame (T rows × K features, NaN missing) into windows covering every row.

    Returns the windows (cond None; timestamps = steps since the series start) and their start
    rows (N,), see `window_starts`; `stitch` puts per-window results back together.
    """
    n_rows = len(frame)
    if window < 2:
        raise DataError(f"window must be at least 2 steps; got {window}")
    if window > n_rows:
        raise DataError(f"window of {window} steps is longer than the series ({n_rows} rows)")
    if stride < 1:
        raise DataError(f"stride must be at least 1; got {stride}")
    data = frame.to_numpy(dtype=np.float64)  # (T, K)
    starts = window_starts(n_rows, window, stride)
    rows = starts[:, None] + np.arange(window)  # (N, L)
    values = data[rows]  # (N, L, K)
    observed = ~np.isnan(values)
    windows = WindowSet(
        values=np.where(observed, values, 0.0).astype(np.float32),
        observed=observed,
        cond=None,
        timestamps=rows.astype(np.float32),
        feature_names=tuple(str(c) for c in frame.columns),
    )
    return windows, starts


def check_training_values(
    path: Path | str, frame: pd.DataFrame, train: WindowSet, scaler: Scaler
) -> None:
    """Refuse what would train a useless or broken model, naming file, column and value: a
    column with no value in the training rows (nothing to learn its scale or range from), and
    a value the scaler puts beyond ±`scaling.MODEL_RANGE` (its square overflows 32-bit floats)."""
    seen = np.asarray(train.observed).reshape(-1, len(frame.columns)).any(axis=0)  # (K,)
    empty = [str(frame.columns[k]) for k in np.flatnonzero(~seen)]
    if empty:
        raise DataError(
            f"{path}: column(s) {empty} have no values in the training rows; "
            "remove them or give them values"
        )
    values = frame.to_numpy(dtype=np.float64)  # (T, K)
    hit = scaler.first_beyond_range(values, ~np.isnan(values))
    if hit is not None:
        row, k = hit
        message = beyond_range_message(
            str(frame.columns[k]), values[row, k], f"at {frame.index[row]}"
        )
        raise DataError(f"{path}: {message}")


def train_valid_windows(
    frame: pd.DataFrame, *, window: int, stride: int, validation_fraction: float
) -> tuple[WindowSet, WindowSet | None]:
    """Training windows from the earlier rows, validation windows from the last rows.

    The last `validation_fraction` of the rows (at least one window's worth, when the fraction
    is positive) are kept for validation, cut into windows every `window` rows; training windows
    start every `stride` rows of the rest (stride 1: every start position, as CSDI trains PM2.5,
    so a short file still yields many distinct windows). The two never share a row.
    """
    n_rows = len(frame)
    if not 0.0 <= validation_fraction < 1.0:
        raise DataError(f"validation_fraction must be in [0, 1); got {validation_fraction}")
    n_valid = 0
    if validation_fraction > 0:
        n_valid = max(window, round(n_rows * validation_fraction))
        if n_rows - n_valid < window:
            n_valid = 0  # too short to hold out a window: train on all of it
    train, _ = frame_to_windows(frame.iloc[: n_rows - n_valid], window=window, stride=stride)
    if n_valid == 0:
        return train, None
    valid, _ = frame_to_windows(frame.iloc[n_rows - n_valid :], window=window, stride=window)
    return train, valid
