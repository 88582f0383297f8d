"""What a benchmark leaves in reports/: its command line, machine and rows as JSON, and its page.

Paths in both are relative to the repository (the command names the script as
`pipelines/benchmarks/NAME.py`), so the records hold no machine's paths.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any


def command_line(script: str) -> str:
    """`python pipelines/benchmarks/NAME.py ARGS…` as this process was invoked."""
    return shlex.join(["python", f"pipelines/benchmarks/{Path(script).name}", *sys.argv[1:]])


def write_record(report: Path, command: str, machine: str, rows: Any, lines: list[str]) -> None:
    """REPORT.json {command, machine, rows} and REPORT.md (the page's `lines`)."""
    report.with_suffix(".json").write_text(
        json.dumps({"command": command, "machine": machine, "rows": rows}, indent=2) + "\n"
    )
    report.with_suffix(".md").write_text("\n".join(lines) + "\n")
