"""Checkpoints: state dicts + plain data, written atomically, read with `weights_only=True`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A model directory or checkpoint that cannot be used; the message names the file."""


TEMP_SUFFIX = ".tmp"


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half-written file.

    A process killed mid-write leaves at most a hidden `.NAME.*.tmp` beside an intact `path`
    (`remove_stale_temporaries` clears those); a failed write (disk full, read-only folder)
    raises OSError naming `path` and leaves the previous `path` as it was.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as e:
        raise OSError(f"could not write {path}: {e.strerror or e}") from e
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(
            f"could not write {path}: {e.strerror or e}; the previous file is kept"
        ) from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files that killed writers left in `directory`; returns them."""
    if not directory.is_dir():
        return []
    stale = [p for p in directory.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def write_text_atomic(text: str, path: Path) -> None:
    """Write a text file atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports and configs are meant to be read
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True; a missing or unreadable file raises CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupted / foreign pickle: one line, not a traceback
        raise CheckpointError(f"{path}: not a readable csdi checkpoint ({type(e).__name__})") from e
