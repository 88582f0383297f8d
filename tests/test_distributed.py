"""Data-parallel training on CPUs (gloo), two processes of one thread each: ranks that start
from different weights end identical (DDP), losses averaged, rank 0 alone writing and speaking."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
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
