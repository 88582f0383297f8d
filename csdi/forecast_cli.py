"""`csdi forecast`: forecast the next H rows of a CSV/parquet history with a trained model.

Thin: parses, reads the history, calls `Forecaster.forecast`, writes the horizon rows (medians
under the feature names, then `<feature>_q<level>` quantile columns) and optionally all samples.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csdi.cli_args import (
    add_output_options,
    add_sampling_options,
    check_model_outputs,
    positive_int,
    quantile_levels,
    read_model_input,
    sampling_arguments,
)


def add_forecast_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `forecast` command to the CLI's subparsers; returns its parser."""
    p = subparsers.add_parser("forecast", help="forecast the next H rows of a CSV/parquet file")
    p.add_argument("--model", type=Path, required=True, help="a forecasting model directory")
    p.add_argument("--input", type=Path, required=True, help="the history (rows = time)")
    p.add_argument("--horizon", type=positive_int, required=True, help="rows to forecast")
    p.add_argument(
        "--output",
        type=Path,
        required=True,
        help="medians and quantiles: CSV (.csv, .csv.gz) or parquet (.parquet)",
    )
    p.add_argument("--quantiles", type=quantile_levels, default=(0.05, 0.5, 0.95))
    p.add_argument("--samples-output", type=Path, help="also write all samples (S, H, K) to .npz")
    p.add_argument("--time-column")
    add_output_options(p)
    add_sampling_options(p)
    return p


def future_index(index: pd.Index, horizon: int) -> pd.Index:
    """The `horizon` time stamps after a history's index: its frequency (dates) or last step
    (numbers); a plain row-number index continues counting."""
    if isinstance(index, pd.DatetimeIndex):
        if len(index) < 2:
            raise ValueError("need at least 2 time stamps to tell the step of the future rows")
        freq = None
        if len(index) >= 3:
            with pd.option_context("future.infer_freq_returns_offset", True):
                freq = pd.infer_freq(index)  # an offset (calendar-aware: months, business days)
        step = pd.tseries.frequencies.to_offset(freq) if freq else index[-1] - index[-2]
        return pd.DatetimeIndex(
            [index[-1] + (i + 1) * step for i in range(horizon)], name=index.name
        )
    if pd.api.types.is_numeric_dtype(index) and len(index) >= 2:
        step = index[-1] - index[-2]
        return pd.Index(index[-1] + step * np.arange(1, horizon + 1), name=index.name)
    return pd.RangeIndex(len(index), len(index) + horizon, name=index.name)


def cmd_forecast(args: argparse.Namespace) -> None:
    from csdi.forecaster import Forecaster
    from csdi.imputer import InputError, quantile_columns, quantile_frame
    from csdi.output_files import write_samples, write_table

    check_model_outputs(args)
    forecaster = Forecaster.load(args.model)
    if args.device:
        from dataclasses import replace

        cfg = forecaster.imputer.config
        forecaster.imputer.config = replace(cfg, train=replace(cfg.train, device=args.device))
    quantile_columns(forecaster.imputer.feature_names, args.quantiles)  # refused before sampling
    frame = read_model_input(args, forecaster.config.data, forecaster.imputer.feature_names)
    try:
        result = forecaster.forecast(
            frame,
            horizon=args.horizon,
            n_samples=args.samples,
            **sampling_arguments(args),
            progress=True,
        )
        index = future_index(frame.index, args.horizon)
    except ValueError as e:  # InputError and bad time stamps: name the file they are in
        raise InputError(f"{args.input}: {e}") from None
    names = list(forecaster.imputer.feature_names)
    out = quantile_frame(result.median[0], result.quantiles[:, 0], result.levels, index, names)
    write_table(out, args.output)
    if args.samples_output is not None:
        write_samples(args.samples_output, result.samples[0], names, index)  # (S, H, K)
    print(
        f"forecast {args.horizon} steps of {len(names)} features with "
        f"{result.samples.shape[1]} samples in {result.seconds:.1f} s → {args.output}"
    )
