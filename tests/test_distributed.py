"""Data-parallel training on CPUs (gloo), two processes of one thread each: ranks that start
from different weights end identical (DDP), losses averaged, rank 0 alone writing and speaking."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from csdi import checkpoint
from csdi.config import load_config
from csdi.distributed import Distributed
from csdi.imputer import Imputer
from tests.conftest import TINY, sine_frame_values


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cfg = load_config(None, [*TINY, "train.steps=6", "train.validate_every=3"])
        data = sine_frame_values(24 * 12, 3, 0.3, seed=0).reshape(24, 12, 3)
        imputer = Imputer(cfg, Distributed(rank=rank, world_size=world, local_rank=rank))
        torch.manual_seed(rank)  # different initial weights: DDP starts every rank from rank 0's
        imputer.fit(data, progress=False)  # no files: every rank keeps its own EMA weights
        assert imputer.network is not None and imputer.history is not None
        torch.save(
            {"live": imputer.network.state_dict(), "losses": imputer.history.train_loss},
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_ranks_end_with_identical_weights_and_averaged_losses(tmp_path) -> None:
    mp.spawn(_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name, tensor in r0["live"].items():
        torch.testing.assert_close(r1["live"][name], tensor, rtol=0, atol=0)
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == 2  # averaged across ranks


def test_torchrun_cli_training(tmp_path) -> None:
    data = tmp_path / "series.csv"
    pd.DataFrame(sine_frame_values(300, 3, 0.2, seed=0), columns=["a", "b", "c"]).to_csv(data)
    out = tmp_path / "model"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    argv += ["-m", "csdi.cli", "train", "--data", str(data), "--window", "16", "--output", str(out)]
    argv += ["--no-tracking", "--threads", "1", "--steps", "8", "--set", "train.validate_every=4"]
    argv += [a for s in TINY for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("on each of 2 ranks") == 1  # rank 0 alone speaks
    assert checkpoint.load(out / "last.pt")["history"]["steps"] == [4, 8]
    assert (out / "model.pt").is_file() and (out / "config.json").is_file()


def test_sharded_evaluation_equals_a_single_process_one(tmp_path) -> None:
    """`torchrun … csdi evaluate`: each rank samples its share of the windows with the seeds of
    a single run; rank 0 gathers and scores — the same samples and metrics (to float rounding
    of the batched network calls), one record."""
    config = Path(__file__).resolve().parents[1] / "pipelines" / "synthetic.toml"
    model = tmp_path / "model"
    sets = [a for s in [*TINY, "train.epochs=1"] for a in ("--set", s)]
    train = [sys.executable, "-m", "csdi.cli", "-q", "train", "--config", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*train, "--output", str(model), "--no-tracking", *sets], env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    evaluate = ["-m", "csdi.cli", "-q", "evaluate", "--model", str(model), "--max-windows", "5"]
    evaluate += ["--samples", "3", "--steps", "4", "--no-tracking", "--no-elbo"]
    records = []
    for launcher in (
        [sys.executable],
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    ):
        out = tmp_path / f"r{len(records)}"
        npz = tmp_path / f"s{len(records)}.npz"
        argv = [*launcher, *evaluate, "--reports", str(out), "--samples-output", str(npz)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        records.append(json.loads((model / "metrics.json").read_text()))
        stored = json.loads((out / "synthetic" / "results.json").read_text())
        assert len(stored) == 1  # one record, written by rank 0 alone
    with np.load(tmp_path / "s0.npz") as a, np.load(tmp_path / "s1.npz") as b:
        # equal up to the rounding of batched matrix products (other batch compositions)
        np.testing.assert_allclose(a["samples"], b["samples"], rtol=0, atol=1e-5)
    for name, value in records[0]["metrics"].items():
        assert records[1]["metrics"][name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
