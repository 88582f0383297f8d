"""glibc's malloc tunables (csdi.allocator): taken where the C library is glibc, set by the CLI."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from csdi import allocator, cli

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


#: In a fresh process: malloc 16 MiB, print how many blocks glibc served with mmap for it and
#: whether the heap has grown by it and still holds it once freed (mallinfo2, glibc ≥ 2.33).
#: The module is loaded from its file alone: importing the package (torch) could free large
#: blocks first, which raises glibc's dynamic mmap threshold before the probe.
PROBE = """
import ctypes, importlib.util, sys
spec = importlib.util.spec_from_file_location("allocator", sys.argv[2])
allocator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(allocator)
keep_freed_memory = allocator.keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "set":
    assert keep_freed_memory()
before = libc.mallinfo2()
block = libc.malloc(16 << 20)
mapped = libc.mallinfo2().hblks - before.hblks
libc.free(block)
print(mapped, int(libc.mallinfo2().arena - before.arena >= 16 << 20))
"""


@pytest.mark.skipif(not GLIBC, reason="the tunables are glibc's")
def test_a_large_block_comes_from_the_heap_and_stays_there_once_freed() -> None:
    """By default glibc maps a 16 MiB block from the kernel (and unmaps it at free); with the
    thresholds set it is cut from the heap, and the heap keeps the memory after the free."""

    def probe(mode: str) -> list[str]:
        argv = [sys.executable, "-c", PROBE, mode, allocator.__file__]
        run = subprocess.run(argv, capture_output=True, text=True)
        if "mallinfo2" in run.stderr:
            pytest.skip("this glibc has no mallinfo2 (glibc < 2.33)")
        assert run.returncode == 0, run.stderr
        return run.stdout.split()

    assert probe("default") == ["1", "0"]
    assert probe("set") == ["0", "1"]


def test_other_platforms_are_left_alone(monkeypatch) -> None:
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False


def test_every_command_runs_with_the_thresholds_set(monkeypatch, tmp_path, capsys) -> None:
    calls: list[str] = []

    def record() -> bool:
        calls.append("set")
        return True

    monkeypatch.setattr(cli, "keep_freed_memory", record)
    assert cli.main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    assert calls == ["set"] and "pm25" in capsys.readouterr().out
