"""Argument types, option groups and input reading shared by the `csdi` commands."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from csdi.config import DataConfig
from csdi.data.errors import DataError
from csdi.data.tabular import read_table

log = logging.getLogger("csdi")

#: file types an `--output` table must not be given: written as CSV they would mislead
NOT_TABLES = (".npz", ".npy", ".pt", ".pkl", ".json", ".xlsx", ".xls", ".png")


def quantile_levels(text: str) -> tuple[float, ...]:
    """'0.05,0.5,0.95' → (0.05, 0.5, 0.95): ascending, each once, each strictly inside (0, 1)."""
    try:
        levels = tuple(sorted({float(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"quantiles must be numbers like 0.05,0.5,0.95; got {text!r}"
        ) from None
    if not levels:
        raise argparse.ArgumentTypeError("give at least one quantile level, e.g. 0.05,0.5,0.95")
    if any(not 0.0 < q < 1.0 for q in levels):
        raise argparse.ArgumentTypeError(
            f"quantiles must lie strictly between 0 and 1; got {text!r}"
        )
    return levels


def _int_at_least(text: str, low: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {expected}; got {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "an integer ≥ 0")


def _finite_float(text: str, ok: Callable[[float], bool], expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"expected {expected}; got {value}")
    return value


def positive_float(text: str) -> float:
    return _finite_float(text, lambda v: v > 0, "a positive number")


def non_negative_float(text: str) -> float:
    return _finite_float(text, lambda v: v >= 0, "a number ≥ 0")


def missing_codes(text: str) -> str:
    """'-999,-9999': comma-separated finite numbers (the form `data.missing_values` takes)."""
    for v in text.split(","):
        _finite_float(v, lambda _: True, "numbers separated by commas, e.g. -999,-9999")
    return text


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """--samples, --sampler, --steps, --time-grid, --eta, --precision, --seed, --chunk-size,
    --no-clip, --uncalibrated, --compile, --device (default: the model's), --threads."""
    p.add_argument("--samples", type=positive_int, help="samples per window (default: the model's)")
    p.add_argument("--sampler", choices=["ancestral", "sde", "ode", "ddim", "dpm_solver"])
    p.add_argument("--steps", type=positive_int, help="sampler steps")
    p.add_argument(
        "--time-grid",
        choices=["uniform", "quadratic", "logsnr"],
        help="sampler time grid (logsnr: uniform in log-SNR, for few-step samplers)",
    )
    p.add_argument(
        "--eta",
        type=non_negative_float,
        help="ddim only: 0 deterministic (default), 1 the ancestral step",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        help="of the network calls: fp32, bf16 autocast (the sampler stays fp32), or auto "
        "(bf16 where the CPU or GPU computes it natively)",
    )
    p.add_argument("--seed", type=non_negative_int, help="sampling seed (an integer ≥ 0)")
    p.add_argument(
        "--chunk-size", type=positive_int, help="rows (windows × samples) per network call"
    )
    p.add_argument(
        "--no-clip",
        action="store_true",
        help="do not keep imputed values inside the range learned from the training data",
    )
    p.add_argument(
        "--uncalibrated",
        action="store_true",
        help="keep the samples' spread as the sampler draws it, without the factors fitted on "
        "the validation windows at training",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network (faster calls after a compilation of its own)",
    )
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], help="default: the model's")
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: all)")


def sampler_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The `SamplingConfig` fields that the options of `add_sampling_options` set (not the
    sample count); None where an option was not given."""
    return {
        "sampler": args.sampler,
        "steps": args.steps,
        "time_grid": args.time_grid,
        "eta": args.eta,
        "chunk_size": args.chunk_size,
        "precision": args.precision,
        "clip": False if args.no_clip else None,
        "compile": args.compile or None,
        "seed": args.seed,
    }


def sampling_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `Imputer.impute` / `Forecaster.forecast` that the options of
    `add_sampling_options` (and --quantiles) set; None leaves the model's own setting."""
    return {
        **sampler_settings(args),
        "quantiles": args.quantiles,
        "calibrated": not args.uncalibrated,
    }


def add_output_options(p: argparse.ArgumentParser) -> None:
    """--force: allow an output to replace a file the command reads."""
    p.add_argument(
        "--force",
        action="store_true",
        help="allow an output to replace a file this command reads (e.g. --output = --input)",
    )


def check_model_outputs(args: argparse.Namespace) -> None:
    """`check_outputs` for a command that reads `--input` and the `--model` directory and
    writes `--output` and `--samples-output` (impute, forecast)."""
    reads = [args.input, *args.model.glob("*")]
    check_outputs([args.output, args.samples_output], reads, args.force)
    if args.output.suffix.lower() in NOT_TABLES:
        raise ValueError(
            f"--output {args.output} is written as a table: name it .csv (or .csv.gz) or "
            ".parquet; --samples-output takes the .npz of every sample"
        )


def check_outputs(outputs: list[Path | None], reads: list[Path], force: bool) -> None:
    """Before any work: refuse an output that is a file the command reads (the user's data
    would be lost) unless `force`, two outputs that are one file, and an output that is a
    directory; create missing parent folders; say so when an output replaces a file."""
    read = {r.resolve() for r in reads if r.exists()}
    written: dict[Path, Path] = {}
    for out in outputs:
        if out is None:
            continue
        target = out.resolve()
        if target in read and not force:
            raise ValueError(
                f"{out} is also an input of this command; writing it would destroy the input "
                "(choose another --output, or pass --force)"
            )
        if target in written:
            raise ValueError(f"{written[target]} and {out} are the same file; give each its own")
        written[target] = out
        if target.is_dir():
            raise ValueError(f"{out} is a directory; give a file name")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file():
            log.warning("replacing the existing file %s", out)


def read_model_input(
    args: argparse.Namespace, data: DataConfig, feature_names: tuple[str, ...]
) -> pd.DataFrame:
    """`--input` read as the model's training file was (time column, date order, missing-value
    codes); text columns the model does not take are dropped, and its features are never
    guessed to be the time. The model's time column missing from the file is named as such."""
    time_column = args.time_column or data.time_column
    try:
        frame = read_table(
            args.input,
            time_column=time_column,
            drop_non_numeric=True,
            exclude=feature_names,
            date_order=data.date_order,
            missing_values=data.missing_values,
        )
    except DataError as e:
        lost = f"time column {time_column!r} not found"
        if args.time_column is None and time_column is not None and lost in str(e):
            raise DataError(
                f"{e} (the time column the model was trained with: name this file's with "
                "--time-column)"
            ) from None
        raise
    empty = [n for n in feature_names if n in frame and frame[n].isna().all()]
    if empty:
        log.warning(
            "%s: no value given in column(s) %s: imputed from the other columns and the "
            "training range alone, with wide intervals",
            args.input,
            empty,
        )
    return frame
