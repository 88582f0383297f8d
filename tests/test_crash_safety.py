"""Training that survives SIGKILL and a full disk: nothing corrupt, resume equal to a clean run.

Each run is `csdi train` in its own process (one thread, CPU), so a kill is a real SIGKILL of
the whole interpreter. Training is deterministic on a CPU with a fixed seed, and the resume
checkpoint holds the optimizer, EMA, RNG and batch cursor, so a killed-then-resumed run must
reproduce the uninterrupted run's losses and weights exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pytest
import torch

from csdi import checkpoint
from csdi.cli import main
from tests.conftest import TINY, sine_frame_values

STEPS = ["--steps", "40", "--set", "train.validate_every=8", "--set", "train.seed=3"]

# runs `csdi train` with torch.save patched to die (SIGKILL) half-way through its N-th write
KILL_IN_WRITE = """
import os, signal, sys, torch
from csdi import checkpoint
from csdi.cli import main
calls, real_save = [0], torch.save
def dying_save(obj, f, *a, **k):
    calls[0] += 1
    if calls[0] == int(os.environ["KILL_AT_WRITE"]):
        f.write(b"half a checkpoint")  # f: the open temporary file
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *a, **k)
checkpoint.torch.save = dying_save
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "series.csv"
    pd.DataFrame(sine_frame_values(400, 3, 0.2, seed=0), columns=["a", "b", "c"]).to_csv(path)
    return path


def train_argv(data: Path, out: Path) -> list[str]:
    argv = ["-q", "train", "--data", str(data), "--window", "16", "--output", str(out)]
    argv += ["--no-tracking", "--threads", "1", *STEPS]
    return argv + [a for s in TINY for a in ("--set", s)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run_cli(argv: list[str], code: str | None = None, **env: str) -> subprocess.CompletedProcess:
    prefix = [sys.executable, "-c", code] if code else [sys.executable, "-m", "csdi.cli"]
    return subprocess.run(
        [*prefix, *argv], capture_output=True, text=True, env={**_env(), **env}, timeout=300
    )


def history(out: Path) -> dict:
    return checkpoint.load(out / "last.pt")["history"]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(out / "model.pt")["network"]


@pytest.fixture(scope="module")
def clean_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "model"
    done = run_cli(train_argv(data, out))
    assert done.returncode == 0, done.stderr
    return out


def assert_same_run(out: Path, clean: Path) -> None:
    got, want = history(out), history(clean)
    assert got["steps"] == want["steps"]
    assert got["train_loss"] == want["train_loss"] and got["valid_loss"] == want["valid_loss"]
    for name, tensor in weights(clean).items():
        torch.testing.assert_close(weights(out)[name], tensor, rtol=0, atol=0)
    assert not list(out.glob(".*.tmp")) and not list((out / "snapshots").glob(".*.tmp"))


def test_sigkill_mid_epoch_then_resume_equals_the_clean_run(data, clean_run, tmp_path) -> None:
    out = tmp_path / "model"
    proc = subprocess.Popen(
        [sys.executable, "-m", "csdi.cli", *train_argv(data, out)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (out / "last.pt").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    lost_from = len(history(out)["steps"]) if (out / "last.pt").is_file() else 0
    time.sleep(0.3)  # inside a later round
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before it could be killed"
    checkpoint.load(out / "last.pt")  # intact: loads
    assert len(history(out)["steps"]) >= lost_from  # at most the current round is lost
    done = run_cli([*train_argv(data, out), "--resume"])
    assert done.returncode == 0, done.stderr
    assert_same_run(out, clean_run)


@pytest.mark.parametrize("write", [3, 6])
def test_sigkill_mid_checkpoint_write_then_resume(data, clean_run, tmp_path, write) -> None:
    out = tmp_path / "model"
    killed = run_cli(train_argv(data, out), code=KILL_IN_WRITE, KILL_AT_WRITE=str(write))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert list(out.glob(".*.tmp")) or list((out / "snapshots").glob(".*.tmp"))  # the torn file
    for pt in out.glob("*.pt"):
        checkpoint.load(pt)  # every checkpoint in place is whole
    done = run_cli([*train_argv(data, out), "--resume"])
    assert done.returncode == 0, done.stderr
    assert_same_run(out, clean_run)


def test_disk_full_is_one_line_and_keeps_the_last_checkpoint(
    data, clean_run, tmp_path, monkeypatch, capsys
) -> None:
    out = tmp_path / "model"
    for name in ("last.pt", "model.pt", "config.json"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes((clean_run / name).read_bytes())
    before = (out / "last.pt").read_bytes()

    def full(obj: object, f: BinaryIO, *args: object, **kwargs: object) -> None:
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    argv = train_argv(data, out)
    argv[argv.index("40")] = "60"  # more steps than the finished run: it must write again
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("csdi: error: could not write") and "\n" not in err, err
    assert "No space left on device" in err and str(out) in err
    assert (out / "last.pt").read_bytes() == before
    assert not list(out.glob(".*.tmp"))
    assert np.isfinite(history(out)["train_loss"]).all()
