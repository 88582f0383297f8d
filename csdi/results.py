"""Results records: one JSON record per evaluation, appended to reports/<benchmark>/results.json.

Record fields (ARCHITECTURE §5): dataset, protocol, method, metrics, n_samples, sampler, steps,
seed, epochs, train_seconds, impute_seconds, device, command, commit, date. The file is a JSON
list; a new record is appended and the file replaced atomically, so nothing earlier is lost.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from csdi.checkpoint import write_text_atomic


class ResultsError(ValueError):
    """A results file that is not a JSON list of records."""


def git_commit() -> str:
    """The current commit (with `-dirty` when the tree has changes), or 'unknown'."""
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def portable(path: str | Path) -> str:
    """`path` as records and reports hold it: an absolute path made relative to the working
    directory, so no machine's folder layout is written down; a relative one unchanged."""
    text = str(path)
    return os.path.relpath(text) if os.path.isabs(text) else text


def invocation(argv: Sequence[str] | None = None) -> str:
    """The `csdi …` command line that ran (`sys.argv[1:]` by default), absolute paths made
    relative (`portable`), also after an `=` (`--option=/path`, `--set key=/path`)."""

    def arg(a: str) -> str:
        if os.path.isabs(a):
            return portable(a)
        name, eq, value = a.rpartition("=")  # --opt=/path, key=/path, --set=key=/path
        return f"{name}={portable(value)}" if eq and os.path.isabs(value) else a

    return shlex.join(["csdi", *(arg(a) for a in (sys.argv[1:] if argv is None else argv))])


def device_description(device: str) -> str:
    """'cpu (<processor>, N threads)' or the CUDA device name."""
    if device.startswith("cuda"):
        import torch

        return f"cuda ({torch.cuda.get_device_name(0)})"
    import torch

    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def make_record(
    *,
    dataset: str,
    protocol: dict[str, Any],
    method: str,
    metrics: dict[str, float],
    n_samples: int,
    sampler: str | None,
    steps: int | None,
    seed: int,
    epochs: int | None,
    train_seconds: float | None,
    impute_seconds: float | None,
    device: str,
    command: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "protocol": protocol,
        "method": method,
        "metrics": metrics,
        "n_samples": n_samples,
        "sampler": sampler,
        "steps": steps,
        "seed": seed,
        "epochs": epochs,
        "train_seconds": train_seconds,
        "impute_seconds": impute_seconds,
        "device": device,
        "command": command or invocation(),
        "commit": git_commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **extra,
    }


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultsError(
            f"{path}: not valid JSON ({e.msg} at line {e.lineno}); not touched"
        ) from None
    if not isinstance(records, list):
        raise ResultsError(f"{path}: expected a JSON list of records; not touched")
    return records


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append to the JSON list at `path` (created if absent); an unreadable file is left alone."""
    records = read_records(path)
    records.append(record)
    write_text_atomic(json.dumps(records, indent=2) + "\n", path)
