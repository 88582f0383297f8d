"""Download the raw files of registered datasets from their public sources (`csdi data fetch`).

Each file comes from its registry `url` (or `<base_url>/<path>` for a mirror), is checked
against its SHA-256, and only then renamed into place: a failed or mismatching download leaves
no partial file and never replaces an existing file. Files already present and intact are
skipped. Standard library only (urllib).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from csdi.data.registry import DATASETS, DataFile, registry_name, sha256_file

CHUNK = 1 << 20
TIMEOUT_S = 60.0


class FetchError(ValueError):
    """One file could not be fetched; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class FetchResult:
    """What happened to one file: `status` is "fetched", "present" or "failed"."""

    path: Path
    status: str
    message: str


def file_url(f: DataFile, base_url: str | None = None) -> str:
    """Where to get `f`: `<base_url>/<path>` for a mirror, else its registry URL ("" if none)."""
    if base_url:
        return f"{base_url.rstrip('/')}/{urllib.parse.quote(f.path)}"
    return f.url


def download(url: str, target: Path, sha256: str, timeout: float = TIMEOUT_S) -> int:
    """Download `url` to `target` atomically if its SHA-256 is `sha256`; returns the byte count.

    The bytes go to a hidden temporary file next to `target`, which is renamed over `target`
    only after the checksum matched; on any failure it is removed and `target` is untouched.
    Raises FetchError (HTTP error, unreachable host, checksum mismatch, disk error)."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0
        with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("xb") as out:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
        got = h.hexdigest()
        if got != sha256:
            raise FetchError(
                f"{target}: checksum mismatch for {url}: expected SHA-256 {sha256}, got {got}"
            )
        os.replace(tmp, target)
        return size
    except urllib.error.HTTPError as e:
        raise FetchError(f"{target}: HTTP {e.code} {e.reason} from {url}") from e
    except urllib.error.URLError as e:
        host = urllib.parse.urlsplit(url).netloc or url
        raise FetchError(f"{target}: cannot reach {host}: {e.reason}") from e
    except TimeoutError as e:
        raise FetchError(f"{target}: timed out after {timeout:.0f} s reading {url}") from e
    except (http.client.HTTPException, ConnectionError) as e:
        raise FetchError(f"{target}: download from {url} broke off: {e!r}") from e
    except OSError as e:
        raise FetchError(f"{target}: cannot write it: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)


def fetch_file(f: DataFile, data_dir: Path, base_url: str | None = None) -> FetchResult:
    """Fetch one file into `data_dir` unless already present and intact; failures are returned."""
    target = data_dir / f.path
    if target.is_file() and sha256_file(target) == f.sha256:
        return FetchResult(target, "present", f"present {target} (SHA-256 ok), skipped")
    url = file_url(f, base_url)
    if not url:
        return FetchResult(
            target,
            "failed",
            f"{target}: no public URL gives this exact file: {f.source} "
            "(use --base-url with a mirror that has it)",
        )
    try:
        size = download(url, target, f.sha256)
    except FetchError as e:
        return FetchResult(target, "failed", str(e))
    return FetchResult(target, "fetched", f"fetched {target} ({size:,} bytes, SHA-256 ok)")


def fetch(
    names: Sequence[str],
    data_dir: Path | str,
    base_url: str | None = None,
    report: Callable[[FetchResult], None] | None = None,
) -> list[FetchResult]:
    """Fetch every file of the named datasets (registry entries or `data.dataset` values).

    Unknown names raise ValueError listing the valid ones before anything is downloaded.
    `report` is called with each file's result as soon as it is known."""
    if not names:
        choices = sorted({*DATASETS, *(n for d in DATASETS.values() for n in d.loaded_as)})
        raise ValueError(f"name the datasets to fetch; choose from {choices}")
    entries = list(dict.fromkeys(registry_name(n) for n in names))
    if base_url and urllib.parse.urlsplit(base_url).scheme not in ("http", "https", "file"):
        raise ValueError(f"--base-url {base_url!r} must start with http://, https:// or file://")
    data_dir = Path(data_dir)
    results = []
    for entry in entries:
        for f in DATASETS[entry].files:
            result = fetch_file(f, data_dir, base_url)
            if report is not None:
                report(result)
            results.append(result)
    return results


def fetch_command(names: Sequence[str], data_dir: Path, base_url: str | None = None) -> None:
    """`csdi data fetch`: one stdout line per file fetched or skipped, one line per failure.

    Failures are printed to stderr as `csdi: error: …`, one line each; the last is raised as
    FetchError so the CLI prints it the same way and exits with status 2."""
    failures: list[str] = []

    def report(result: FetchResult) -> None:
        if result.status == "failed":
            failures.append(result.message)
        else:
            print(result.message, flush=True)

    fetch(names, data_dir, base_url, report)
    if failures:
        for message in failures[:-1]:
            print(f"csdi: error: {message}", file=sys.stderr)
        raise FetchError(failures[-1])
