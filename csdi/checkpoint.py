"""Checkpoints: state dicts + plain data, written atomically, read with `weights_only=True`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A model directory or checkpoint that cannot be used; the message names the file."""


TEMP_SUFFIX = ".tmp"


def _set_mode(tmp: str, path: Path) -> None:
    """mkstemp makes 0600: give `tmp` the mode of the `path` it replaces, else 0666 less the
    umask (what a plain open() would give); where the file system keeps no modes, leave it."""
    if path.is_file():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        os.chmod(tmp, mode)
    except OSError:
        pass


def write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call `write` on a temporary file in `path`'s folder, then rename it to `path` (with the
    mode of the file it replaces, else the umask's): never a half-written file, and the name
    exactly as given.

    A process killed mid-write leaves at most a hidden `.NAME.*.tmp` beside an intact `path`
    (`remove_stale_temporaries` clears those); a failed write (disk full, read-only folder)
    raises OSError naming `path` and leaves the previous `path` as it was.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as e:
        raise OSError(f"could not write {path}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        _set_mode(tmp, path)
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(
            f"could not write {path}: {e.strerror or e}; the previous file is kept"
        ) from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save through `write_atomic`."""
    write_atomic(path, lambda fh: torch.save(obj, fh))


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """np.savez_compressed through `write_atomic`: the file is `path` as given (savez alone
    appends `.npz` to a name without it, which output checks would not have seen)."""
    write_atomic(path, lambda fh: np.savez_compressed(fh, **arrays))  # type: ignore[arg-type]  # numpy types **kwds as allow_pickle


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files that killed writers left in `directory`; returns them."""
    if not directory.is_dir():
        return []
    stale = [p for p in directory.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def write_text_atomic(text: str, path: Path) -> None:
    """Write a UTF-8 text file through `write_atomic`."""
    write_atomic(path, lambda fh: fh.write(text.encode()))


def load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True; a missing or unreadable file raises CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupted / foreign pickle: one line, not a traceback
        raise CheckpointError(f"{path}: not a readable csdi checkpoint ({type(e).__name__})") from e
