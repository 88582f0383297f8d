"""Command-line entry points `csdi report` and `csdi baselines` (thin: parse, build, call).

`add_report_parser` / `add_baselines_parser` add the sub-commands to `csdi.cli`'s sub-parsers;
`cmd_report` / `cmd_baselines` run them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from csdi.cli_args import positive_int
from csdi.results import invocation


def _methods(text: str) -> tuple[str, ...]:
    from csdi.baselines import BASELINES

    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in BASELINES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown baseline(s) {unknown or text!r}; valid: {', '.join(sorted(BASELINES))}"
        )
    return names


def _option(text: str) -> tuple[str, str, int | float]:
    """`METHOD.NAME=NUMBER` → (method, name, number)."""
    key, sep, value = text.partition("=")
    method, dot, name = key.strip().partition(".")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or not dot or not method or not name or not np.isfinite(number):
        raise argparse.ArgumentTypeError(
            f"option must look like METHOD.NAME=NUMBER (e.g. iterative.max_iter=3); got {text!r}"
        )
    return method, name, int(number) if number.is_integer() else number


def add_report_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`csdi report --experiment NAME [--output DIR] [--reports DIR] [--samples FILE.npz]`."""
    p = subparsers.add_parser(
        "report", help="Markdown + HTML report from reports/NAME/results.json"
    )
    p.add_argument("--experiment", required=True, help="benchmark name, e.g. physionet")
    p.add_argument("--output", type=Path, help="default: REPORTS/NAME")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="results root")
    p.add_argument(
        "--samples",
        type=Path,
        action="append",
        default=[],
        help="samples .npz of imputed windows for the band plots (repeatable)",
    )
    p.add_argument("--title", help="default: the experiment name")
    return p


def cmd_report(args: argparse.Namespace) -> None:
    from csdi.reports import build_report, references_for
    from csdi.results import read_records

    source = args.reports / args.experiment / "results.json"
    records = read_records(source)
    if not records:
        raise ValueError(f"{source}: no results records to report (run an evaluation first)")
    output = args.output or args.reports / args.experiment
    paths = build_report(
        records,
        output_dir=output,
        title=args.title or f"{args.experiment}: results",
        references=references_for(args.experiment),
        samples=list(args.samples),
        command=invocation(),
    )
    print(f"{len(records)} records → {paths['markdown']} and {paths['html']}")


def add_baselines_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`csdi baselines --config FILE [--methods mean,locf,...] [--samples N] ...`."""
    p = subparsers.add_parser(
        "baselines", help="evaluate simple baselines under a config's test protocol"
    )
    p.add_argument("--config", type=Path, required=True, help="TOML experiment config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--methods", type=_methods, default=("mean", "locf", "linear", "knn", "iterative")
    )
    p.add_argument("--samples", type=positive_int, default=100, help="samples per window")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--option",
        action="append",
        default=[],
        type=_option,
        metavar="METHOD.NAME=VALUE",
        help="a baseline option, e.g. iterative.max_iter=3 or knn.n_neighbors=10 (repeatable)",
    )
    p.add_argument(
        "--train-windows",
        type=int,
        help="training windows the baselines see (first N; 0: none; default: all)",
    )
    p.add_argument("--max-windows", type=positive_int, help="only the first N test windows")
    p.add_argument("--reports", type=Path, default=Path("reports"))
    p.add_argument(
        "--samples-output",
        type=Path,
        help="folder for <method>_samples.npz of the first test windows (band plots)",
    )
    p.add_argument("--no-tracking", action="store_true")
    return p


def cmd_baselines(args: argparse.Namespace) -> None:
    from csdi.config import load_config
    from csdi.evaluation import evaluate_baseline

    cfg = load_config(args.config, list(args.set))
    command = invocation()
    for name in args.methods:
        record = evaluate_baseline(
            name,
            cfg.data,
            n_samples=args.samples,
            seed=args.seed,
            max_windows=args.max_windows,
            reports_dir=args.reports,
            track=not args.no_tracking,
            benchmark=cfg.name,
            options={k: v for method, k, v in args.option if method == name},
            train_windows=args.train_windows,
            command=command,
            samples_output=(
                None if args.samples_output is None else args.samples_output / f"{name}_samples.npz"
            ),
        )
        m = record["metrics"]
        print(
            f"{name}: crps={m['crps']:.4f} mae={m['mae']:.4f} "
            f"coverage_90={m['coverage_90']:.3f} in {record['impute_seconds']:.0f} s"
        )
