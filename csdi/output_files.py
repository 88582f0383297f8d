"""What `csdi impute` and `csdi forecast` write: the summary table and, optionally, every sample.

Both go through `checkpoint.write_atomic`, so each file is written whole under exactly the name
the user gave (the name `cli_args.check_outputs` checked).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from csdi.checkpoint import save_npz_atomic, write_atomic
from csdi.data.tabular import PARQUET_SUFFIXES


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """The frame with its index as the first column: parquet for a `.parquet`/`.pq` name, CSV
    for any other (gzip-compressed for `.gz`, as `read_table` reads `.csv.gz`)."""
    label = frame.index.name or "time"
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        table = frame.rename_axis(label).reset_index()
        write_atomic(path, lambda fh: table.to_parquet(fh, index=False))
        return
    data = frame.to_csv(index_label=label).encode()
    write_atomic(path, lambda fh: fh.write(gzip.compress(data) if suffix == ".gz" else data))


def write_samples(path: Path, samples: np.ndarray, names: list[str], index: pd.Index) -> None:
    """Every sample (S, T, K) as float32 with the feature names (K,) and the rows' time stamps
    (T,) as plain strings, so `np.load` reads them without pickle."""
    save_npz_atomic(
        path,
        samples=samples.astype(np.float32),
        feature_names=np.array(names, dtype=str),
        time=np.array(index.astype(str), dtype=str),
    )
