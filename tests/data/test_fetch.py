"""`csdi data fetch` against a local HTTP mirror: checksums, skipping, atomic writes, errors.

Nothing leaves 127.0.0.1: every fetch goes to a ThreadingHTTPServer serving a temporary copy of
a few small files from $CSDI_DATA_DIR (default ../shared/data)."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from csdi.cli import main
from csdi.data.fetch import fetch_file
from csdi.data.registry import DATASETS, DataFile, sha256_file

REPO = Path(__file__).resolve().parents[2]
EXCHANGE = "exchange_rate/exchange_rate.txt.gz"
ETTH1 = "ett/ETTh1.csv.gz"
SHA = {f.path: f.sha256 for d in DATASETS.values() for f in d.files}


@pytest.fixture(scope="module")
def source_dir() -> Path:
    path = Path(os.environ.get("CSDI_DATA_DIR", REPO.parent / "shared" / "data"))
    missing = [p for p in (EXCHANGE, ETTH1) if not (path / p).is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found under {path} (set CSDI_DATA_DIR)")
    return path


class Mirror:
    """A local HTTP server over `root`; `requests` lists the paths asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                mirror.requests.append(self.path)

        handler = functools.partial(Handler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def serve(self, source: Path, rel: str, data: bytes | None = None) -> None:
        """Offer `rel`: a copy of source/rel, or `data` in its place."""
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            shutil.copyfile(source / rel, self.root / rel)
        else:
            (self.root / rel).write_bytes(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "mirror"
    root.mkdir()
    m = Mirror(root)
    yield m
    m.close()


def fetch(names: list[str], dest: Path, base_url: str) -> int:
    return main(["data", "fetch", *names, "--data-dir", str(dest), "--base-url", base_url])


def leftovers(dest: Path) -> list[Path]:
    """Temporary download files left anywhere under dest."""
    return [p for p in dest.rglob("*") if p.name.endswith(".part")]


def error_lines(err: str) -> list[str]:
    lines = err.strip().splitlines()
    assert all(line.startswith("csdi: error: ") for line in lines), err
    return lines


def test_fetch_verifies_and_then_skips(
    source_dir: Path, mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror.serve(source_dir, EXCHANGE)
    dest = tmp_path / "raw"
    assert fetch(["exchange_rate"], dest, mirror.url) == 0
    out = capsys.readouterr().out
    assert sha256_file(dest / EXCHANGE) == SHA[EXCHANGE]
    assert out.count("\n") == 1 and out.startswith("fetched ") and EXCHANGE in out
    assert mirror.requests == [f"/{EXCHANGE}"]
    assert leftovers(dest) == []

    assert fetch(["exchange_rate"], dest, mirror.url + "/") == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "skipped" in out and EXCHANGE in out
    assert mirror.requests == [f"/{EXCHANGE}"]  # nothing downloaded the second time


def test_altered_download_leaves_nothing_and_replaces_nothing(
    source_dir: Path, mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (source_dir / EXCHANGE).read_bytes()
    mirror.serve(source_dir, EXCHANGE, data=good[:-1] + bytes([good[-1] ^ 1]))
    dest = tmp_path / "raw"
    assert fetch(["exchange_rate"], dest, mirror.url) == 2
    captured = capsys.readouterr()
    [line] = error_lines(captured.err)
    assert EXCHANGE in line and "checksum" in line and SHA[EXCHANGE] in line
    assert "Traceback" not in captured.err
    assert not (dest / EXCHANGE).exists() and leftovers(dest) == []

    (dest / EXCHANGE).write_bytes(good)  # a good file is skipped, never downloaded over
    assert fetch(["exchange_rate"], dest, mirror.url) == 0
    assert (dest / EXCHANGE).read_bytes() == good

    (dest / EXCHANGE).write_bytes(b"local, damaged")  # a bad download does not replace it either
    assert fetch(["exchange_rate"], dest, mirror.url) == 2
    assert (dest / EXCHANGE).read_bytes() == b"local, damaged" and leftovers(dest) == []


def test_missing_files_give_one_line_each(
    source_dir: Path, mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`etth1` means the four ETT files; the mirror has only ETTh1, so three are 404s."""
    mirror.serve(source_dir, ETTH1)
    dest = tmp_path / "raw"
    assert fetch(["etth1"], dest, mirror.url) == 2
    captured = capsys.readouterr()
    assert sha256_file(dest / ETTH1) == SHA[ETTH1]
    assert captured.out.count("\n") == 1 and ETTH1 in captured.out
    lines = error_lines(captured.err)
    others = [f.path for f in DATASETS["ett"].files if f.path != ETTH1]
    assert len(lines) == len(others)
    for path in others:
        assert sum(path in line and "HTTP 404" in line for line in lines) == 1
        assert not (dest / path).exists()
    assert leftovers(dest) == []


def test_unknown_dataset_lists_the_valid_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fetch(["electricity"], tmp_path, "http://127.0.0.1:9") == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "electricity" in line
    for name in DATASETS:
        assert name in line
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_one_line(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert fetch(["exchange_rate"], tmp_path, f"http://127.0.0.1:{port}") == 2
    [line] = error_lines(capsys.readouterr().err)
    assert EXCHANGE in line and f"cannot reach 127.0.0.1:{port}" in line
    assert leftovers(tmp_path) == []


def test_file_without_public_url_is_reported_not_downloaded(tmp_path: Path) -> None:
    f = DataFile("x/repacked.tar.gz", "0" * 64, "rebuilt from GitHub someone/repo @ abc", "")
    result = fetch_file(f, tmp_path)
    assert result.status == "failed"
    assert "no public URL gives this exact file: rebuilt from GitHub someone/repo" in result.message
    assert not (tmp_path / "x").exists()


def test_registry_urls_point_at_pinned_snapshots() -> None:
    """Every URL is a raw download at a full commit; "" only where `source` explains why."""
    for d in DATASETS.values():
        for f in d.files:
            if f.url:
                assert f.url.startswith("https://raw.githubusercontent.com/"), f.url
                commit = f.url.split("/")[5]
                assert len(commit) == 40 and int(commit, 16) >= 0, f.url
                assert f.url.endswith(f.path.rsplit("/", 1)[1]), f.url
            else:
                assert any(w in f.source for w in ("packed", "gzip-compressed", "derived")), f
