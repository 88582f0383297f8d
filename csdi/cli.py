"""Command line: `csdi demo | train | impute | evaluate | data` (ARCHITECTURE §6).

Thin: each command parses, builds and calls into the package. Errors a user can fix (bad file,
bad value, bad model directory) print one line `csdi: error: …` and exit with status 2.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from csdi.allocator import keep_freed_memory
from csdi.cli_args import (
    add_output_options,
    add_sampling_options,
    check_model_outputs,
    missing_codes,
    positive_float,
    positive_int,
    quantile_levels,
    read_model_input,
    sampler_settings,
    sampling_arguments,
)
from csdi.config import OWN_DATA_DEFAULTS, OWN_FORECAST_DEFAULTS, RECIPES, load_config
from csdi.progress import QUIET_ENV
from csdi.results import invocation

if TYPE_CHECKING:  # torch loads only for the commands that use it
    from csdi.distributed import Distributed

log = logging.getLogger("csdi")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="csdi",
        description="Probabilistic time-series imputation with conditional score-based diffusion.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="warnings and errors only, no progress bars"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo", help="synthetic data end to end: train, impute, metrics vs oracle, plot"
    )
    p.add_argument("--output", type=Path, default=Path("runs/demo"))
    p.add_argument("--steps", type=positive_int, default=None, help="training steps")
    p.add_argument("--no-tracking", action="store_true")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of the demo's config (repeatable), e.g. train.max_minutes=5",
    )

    p = sub.add_parser("train", help="train from a config file, or on your own CSV/parquet file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="TOML experiment config (see pipelines/)")
    src.add_argument("--data", type=Path, help="your own CSV or parquet file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry, e.g. --set train.epochs=10 (repeatable)",
    )
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="a named training recipe over the config (before --set): csdi = CSDI's own; fast = "
        "2 heads, no dropout, lr 2e-3 with warm-up and a cosine over the budget (3x the steps "
        "per second on a CPU; see csdi.config.RECIPES)",
    )
    p.add_argument("--time-column", help="own data: the time column (default: detected)")
    p.add_argument(
        "--drop-non-numeric",
        action="store_true",
        help="own data: drop text columns (named in a warning) instead of stopping",
    )
    p.add_argument("--window", type=positive_int, help="own data: window length in steps")
    p.add_argument(
        "--horizon",
        type=positive_int,
        help="own data: train a forecaster of this many steps (csdi forecast), not an imputer",
    )
    p.add_argument(
        "--context",
        type=positive_int,
        help="with --horizon: history steps a forecast sees (default: three horizons)",
    )
    p.add_argument(
        "--missing-values",
        type=missing_codes,
        help="own data: values that mean missing, e.g. --missing-values=-999,-9999 (kept with "
        "the model: csdi impute reads its files the same way)",
    )
    p.add_argument("--epochs", type=positive_int, help="passes over the training windows")
    p.add_argument("--steps", type=positive_int, help="optimizer steps (instead of epochs)")
    p.add_argument("--max-minutes", type=positive_float, help="stop training after this wall time")
    p.add_argument("--output", type=Path, help="model directory (default: the config's)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: all)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/last.pt")
    p.add_argument("--force", action="store_true", help="replace a trained model already in OUTPUT")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")

    p = sub.add_parser("impute", help="impute the missing values of a CSV/parquet file")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--input", type=Path, required=True)
    p.add_argument(
        "--output",
        type=Path,
        required=True,
        help="medians and quantiles: CSV (.csv, .csv.gz) or parquet (.parquet)",
    )
    p.add_argument("--quantiles", type=quantile_levels, default=(0.05, 0.5, 0.95))
    p.add_argument("--samples-output", type=Path, help="also write all samples (S, T, K) to .npz")
    p.add_argument("--time-column")
    p.add_argument(
        "--denoise",
        metavar="SIGMA",
        type=_noise_levels,
        help="the observed values carry Gaussian noise of this std (data units; one number or "
        "one per column, comma-separated): sample them too, denoised (ancestral sampler)",
    )
    p.add_argument(
        "--denoise-start",
        metavar="R",
        type=positive_float,
        default=1.0,
        help="with --denoise: take the noisy values up at R times their noise level (1: "
        "matched, exact for Gaussian noise of that size; >1: more injected noise, robust to "
        "outliers and understated noise, smoother)",
    )
    add_sampling_options(p)
    add_output_options(p)

    p = sub.add_parser("evaluate", help="the model's dataset test protocol → metrics.json")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument(
        "--max-windows", type=positive_int, help="evaluate only the first N test windows"
    )
    p.add_argument("--samples-output", type=Path, help="write the first 8 windows' samples (.npz)")
    p.add_argument("--weights", type=Path, help="a weights file of the model (e.g. a snapshot)")
    p.add_argument(
        "--elbo-samples",
        type=positive_int,
        default=16,
        help="diffusion-time draws per window (even) for the ELBO of the held-out values "
        "(default 16)",
    )
    p.add_argument("--no-elbo", action="store_true", help="skip the ELBO")
    p.add_argument(
        "--missing-ratio",
        type=float,
        help="physionet: score on the hold-out of this ratio instead of the model's (training "
        "never reads the hold-out, so one model serves every ratio)",
    )
    p.add_argument("--reports", type=Path, default=Path("reports"))
    p.add_argument("--no-tracking", action="store_true")
    add_sampling_options(p)

    from csdi.forecast_cli import add_forecast_parser
    from csdi.report_cli import add_baselines_parser, add_report_parser

    add_forecast_parser(sub)
    add_baselines_parser(sub)
    add_report_parser(sub)

    p = sub.add_parser("data", help="benchmark datasets: list, verify or fetch")
    p.add_argument("action", choices=["list", "verify", "fetch"])
    p.add_argument(
        "names", nargs="*", help="datasets (e.g. etth1 pm25); verify: default all; fetch: required"
    )
    p.add_argument("--data-dir", type=Path, help="default: $CSDI_DATA_DIR or data/raw")
    p.add_argument(
        "--base-url",
        metavar="URL",
        help="fetch: download from URL/<path in the data dir> (a mirror) instead of the sources",
    )
    return parser


def _noise_levels(text: str) -> float | np.ndarray:
    """--denoise: one positive finite number, or a comma-separated list of them."""
    values = [positive_float(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else np.array(values)


def _sampling_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The SamplingConfig fields given on the command line."""
    given = {"n_samples": args.samples, **sampler_settings(args)}
    return {k: v for k, v in given.items() if v is not None}


def train_overrides(args: argparse.Namespace) -> list[str]:
    """`csdi train`'s arguments as config overrides, in the order they apply: the own-data
    defaults (with --data; with --horizon also the forecasting ones), the --recipe, --set, then
    the dedicated flags."""
    overrides: list[str] = []
    if (args.horizon or args.context or args.missing_values) and args.data is None:
        raise ValueError(
            "--horizon, --context and --missing-values go with --data (a config sets data.*)"
        )
    if args.context and not args.horizon:
        raise ValueError("--context needs --horizon (the steps to forecast)")
    if args.horizon and args.window:
        raise ValueError("a forecaster's window is --context + --horizon; drop --window")
    if args.data is not None:
        overrides += list(OWN_DATA_DEFAULTS)
    if args.data is not None and args.horizon:
        overrides += list(OWN_FORECAST_DEFAULTS)
    if args.recipe is not None:
        overrides += list(RECIPES[args.recipe])
    overrides += list(args.set)
    if args.data is not None:
        overrides += ["data.dataset=table", f"data.path={args.data}", f"name={args.data.stem}"]
        if args.time_column:
            overrides.append(f"data.time_column={args.time_column}")
        if args.drop_non_numeric:
            overrides.append("data.drop_non_numeric=true")
        if args.window:
            overrides.append(f"data.window={args.window}")
        if args.missing_values:
            overrides.append(f"data.missing_values={args.missing_values}")
        if args.horizon:
            overrides.append(f"data.horizon={args.horizon}")
        if args.context:
            overrides.append(f"data.context={args.context}")
        if args.output is None:
            raise ValueError("--output DIR is required with --data")
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    if args.steps:
        overrides.append(f"train.steps={args.steps}")
    asked = {s.split("=", 1)[0].strip() for s in args.set}
    wants_epochs = bool(args.epochs) or "train.epochs" in asked
    wants_steps = bool(args.steps) or "train.steps" in asked
    if args.data is not None and wants_epochs and not wants_steps:
        overrides.append("train.steps=none")  # epochs asked for: the run is sized in epochs
    if args.max_minutes:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    if args.output is not None:
        overrides.append(f"output_dir={args.output}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    return overrides


def _say_what_was_saved(out: Path, since: float, command: str) -> None:
    """After Ctrl-C in training: whether this run wrote a usable model and a resume state."""
    written = [n for n in ("model.pt", "last.pt") if (out / n).is_file()]
    if any((out / n).stat().st_mtime >= since for n in written):
        said = (
            f"training stopped: {out} holds the best weights validated so far (model.pt, usable "
            f"by csdi {command}); --resume continues from the last validation (last.pt)"
        )
    elif written:
        said = f"training stopped before its first validation: {out} is as it was before"
    else:
        said = f"training stopped before its first validation: nothing saved in {out}"
    print(said, file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> None:
    from csdi.distributed import from_environment, shutdown
    from csdi.experiment import train_experiment

    overrides = train_overrides(args)
    cfg = load_config(args.config, overrides)
    out = Path(cfg.output_dir)
    if not (args.resume or args.force) and any(
        (out / name).is_file() for name in ("model.pt", "last.pt")
    ):
        raise ValueError(
            f"{out} already holds a trained model; --resume continues it, --force replaces it, "
            "or choose another --output"
        )
    out.mkdir(parents=True, exist_ok=True)  # a file in the way is refused before any work
    group, _ = from_environment(cfg.train.device)  # a torchrun process group, if started so
    t = cfg.train
    budget = f"{t.steps} steps" if t.steps is not None else f"{t.epochs} epochs"
    if t.max_minutes is not None:
        budget += f" or {t.max_minutes:g} minutes, whichever comes first"
    m = cfg.model
    ranks = f" on each of {group.world_size} ranks" if group.enabled else ""
    d = cfg.data
    default = "three horizons" if d.dataset == "table" else "the dataset's"
    context = f"context {d.context}" if d.context else f"a context of {default}"
    shape = f"window {d.window}" if d.horizon is None else f"{context} + horizon {d.horizon}"
    conv = f", time convolution of width {m.temporal_kernel}" if m.temporal_kernel else ""
    conv += f", distance bias over {m.time_bias} steps" if m.time_bias else ""
    conv += ", feature-pair bias" if m.feature_bias else ""
    conv += ", conditioning centred per window" if m.cond_centre else ""
    if cfg.diffusion.prior_mean == "interpolation":
        auto = cfg.diffusion.prior_season == "auto"
        conv += ", residual prior" + (" with each column's season from the data" if auto else "")
    clip = f", gradient norm clipped at {t.grad_clip:g}" if t.grad_clip is not None else ""
    clip += f", Adam beta2 {t.adam_beta2:g}" if t.adam_beta2 != 0.999 else ""
    if group.is_main:
        print(
            f"training for {budget}: batch {t.batch_size}{ranks}, lr {t.lr:g} ({t.lr_schedule}"
            f"{clip}), "
            f"{shape}, {m.n_layers} layers × {m.channels} channels, "
            f"{m.n_heads} heads{conv}, {m.cond_input} conditioning; change with --steps, "
            "--max-minutes, --set"
        )
    started = time.time()
    try:
        imputer = train_experiment(
            cfg, resume=args.resume, track=not args.no_tracking, distributed=group
        )
    except KeyboardInterrupt:
        if group.is_main:
            _say_what_was_saved(out, started, "forecast" if cfg.data.horizon else "impute")
        raise
    finally:
        shutdown(group)
    if not group.is_main:
        return
    h = imputer.history
    assert h is not None
    print(
        f"trained {h.steps[-1] if h.steps else 0} steps ({h.epochs[-1] if h.epochs else 0} "
        f"rounds) in {h.seconds[-1] if h.seconds else 0:.0f} s; best validation loss "
        f"{h.best_valid:.4f} at round {h.best_epoch}; model in {cfg.output_dir}"
    )
    spread = imputer.spread
    if spread is not None:
        slope = (
            "" if spread.horizon is None else f", ×{np.exp(spread.slope):.2f} by the horizon's end"
        )
        print(
            f"samples' spread calibrated on the validation windows: ×"
            f"{spread.level.min():.2f}–{spread.level.max():.2f} per column{slope} "
            "(impute/forecast --uncalibrated: as drawn)"
        )


def cmd_impute(args: argparse.Namespace) -> None:
    """`csdi impute`; under torchrun the windows are sampled by the ranks together."""
    from csdi.distributed import from_environment, shutdown

    if args.denoise is None and args.denoise_start != 1.0:
        raise ValueError("--denoise-start needs --denoise (the noise level to start from)")
    check_model_outputs(args)
    group, _ = from_environment(args.device or "auto")  # torchrun: windows sharded by rank
    try:
        _impute(args, group)
    finally:
        shutdown(group)


def _impute(args: argparse.Namespace, group: Distributed) -> None:
    from csdi.imputer import Imputer, InputError, imputation_frame, quantile_columns
    from csdi.output_files import write_samples, write_table

    imputer = Imputer.load(args.model)
    imputer.distributed = group
    if args.device:
        from dataclasses import replace

        imputer.config = replace(
            imputer.config, train=replace(imputer.config.train, device=args.device)
        )
    quantile_columns(imputer.feature_names, args.quantiles)  # a clash refused before sampling
    frame = read_model_input(args, imputer.config.data, imputer.feature_names)
    s = imputer.config.sampling
    try:
        result = imputer.impute(
            frame,
            n_samples=args.samples or s.n_samples,
            **sampling_arguments(args),
            progress=True,
            denoise=args.denoise,
            denoise_start=args.denoise_start,
        )
    except InputError as e:  # name the file the problem is in
        raise InputError(f"{args.input}: {e}") from None
    if not group.is_main:  # every rank holds the samples; rank 0 alone writes
        return
    names = list(imputer.feature_names)
    out = imputation_frame(result, frame.index, names)
    write_table(out, args.output)
    if args.samples_output is not None:
        write_samples(args.samples_output, result.samples[0], names, frame.index)  # (S, T, K)
    n_missing = int(np.isnan(frame[names].to_numpy(dtype=float)).sum())
    print(
        f"imputed {n_missing} missing values with {result.samples.shape[1]} samples "
        f"in {result.seconds:.1f} s → {args.output}"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from csdi.distributed import from_environment, shutdown
    from csdi.experiment import evaluate_model

    group, _ = from_environment(args.device or "auto")  # torchrun: windows sharded by rank
    try:
        record = evaluate_model(
            args.model,
            sampling_overrides=_sampling_overrides(args),
            max_windows=args.max_windows,
            reports_dir=args.reports,
            track=not args.no_tracking,
            weights=args.weights,
            device=args.device,
            samples_output=args.samples_output,
            command=invocation(),
            elbo_time_samples=0 if args.no_elbo else args.elbo_samples,
            distributed=group,
            missing_ratio=args.missing_ratio,
            calibrated=not args.uncalibrated,
        )
    finally:
        shutdown(group)
    if record is None:  # not rank 0
        return
    m = record["metrics"]
    print(" ".join(f"{k}={v:.4f}" for k, v in m.items()))
    if record["elbo"] is not None:
        b = record["elbo"]
        print(
            f"-ELBO {b['nats_per_value']:.4f} ± {b['mc_standard_error']:.4f} nats per value "
            f"(prior {b['prior']:.4f}, reconstruction {b['reconstruction']:.4f}, "
            f"diffusion {b['diffusion']:.4f}; normalised units)"
        )
    print(
        f"{record['n_samples']} samples, {record['sampler']} {record['steps']} steps, "
        f"{record['impute_seconds']:.0f} s; record appended to {args.reports}"
    )


def cmd_data(args: argparse.Namespace) -> None:
    from csdi.data.registry import DATASETS, verify
    from csdi.experiment import data_dir

    directory = data_dir(args.data_dir)
    if args.action == "list":
        for name, ds in DATASETS.items():
            print(f"{name}: {ds.description}\n  protocol: {ds.protocol}")
            if ds.loaded_as:
                print(f"  config: data.dataset = {' | '.join(ds.loaded_as)}")
            for f in ds.files:
                print(f"  {directory / f.path}")
        return
    if args.action == "fetch":
        from csdi.data.fetch import fetch_command

        fetch_command(args.names, directory, base_url=args.base_url)
        return
    problems = verify(directory, args.names or None)
    for line in problems:
        print(line)
    if problems:
        raise ValueError(f"{len(problems)} problem(s) with the data in {directory}")
    print(f"all dataset files present and intact in {directory}")


def cmd_demo(args: argparse.Namespace) -> None:
    from csdi.demo import run_demo

    run_demo(args.output, steps=args.steps, track=not args.no_tracking, overrides=tuple(args.set))


def cmd_forecast(args: argparse.Namespace) -> None:
    from csdi.forecast_cli import cmd_forecast as run

    run(args)


def cmd_baselines(args: argparse.Namespace) -> None:
    from csdi.report_cli import cmd_baselines as run

    run(args)


def cmd_report(args: argparse.Namespace) -> None:
    from csdi.report_cli import cmd_report as run

    run(args)


COMMANDS = {
    "train": cmd_train,
    "impute": cmd_impute,
    "evaluate": cmd_evaluate,
    "forecast": cmd_forecast,
    "baselines": cmd_baselines,
    "report": cmd_report,
    "data": cmd_data,
    "demo": cmd_demo,
}


def error_line(e: BaseException) -> str:
    """An error as the one line the user reads: a failed file operation names its path and
    what went wrong, without Python's `[Errno N]`."""
    text = str(e)
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.filename}: {e.strerror}"
        if e.errno in (errno.EEXIST, errno.ENOTDIR):
            text += " (a file stands where a folder is needed)"
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    if args.quiet:
        os.environ[QUIET_ENV] = "1"
    for noisy in ("alembic", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")
    keep_freed_memory()  # glibc reuses freed tensor memory: sampling up to 1.14x (sampler_cpu.md)
    try:
        if getattr(args, "threads", None):  # train, impute, evaluate, forecast
            import torch

            torch.set_num_threads(args.threads)
        COMMANDS[args.command](args)
    except (ValueError, OSError, RuntimeError, ArithmeticError) as e:
        if args.verbose:
            raise
        print(f"csdi: error: {error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("csdi: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
