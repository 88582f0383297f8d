"""Data-parallel training on CPUs (gloo), two processes of one thread each: ranks that start
from different weights end identical (DDP), losses averaged, rank 0 alone writing and speaking."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
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
from csdi.training import Trainer
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


def test_sharded_impute_equals_a_single_process_one(tmp_path) -> None:
    """`torchrun … csdi impute` of a long file: the ranks sample their shares of the windows
    with a single run's seeds; rank 0 alone writes the same imputation and samples."""
    frame = pd.DataFrame(sine_frame_values(200, 3, 0.3, seed=2), columns=["a", "b", "c"])
    frame.to_csv(tmp_path / "series.csv")
    cfg = load_config(None, [*TINY, "train.steps=4", "data.window=16"])
    Imputer(cfg).fit(frame, progress=False).save(tmp_path / "model")
    impute = ["-m", "csdi.cli", "-q", "impute", "--model", str(tmp_path / "model")]
    impute += ["--input", str(tmp_path / "series.csv"), "--samples", "4", "--steps", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, launcher in (
        ("one", [sys.executable]),
        ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone"]),
    ):
        extra = ["--nproc_per_node", "2"] if name == "two" else []
        argv = [*launcher, *extra, *impute, "--output", str(tmp_path / f"{name}.csv")]
        argv += ["--samples-output", str(tmp_path / f"{name}.npz")]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "one.npz") as a, np.load(tmp_path / "two.npz") as b:
        assert a["samples"].shape == (4, 200, 3)
        np.testing.assert_allclose(a["samples"], b["samples"], rtol=0, atol=1e-5)
    one, two = (pd.read_csv(tmp_path / f"{n}.csv", index_col=0) for n in ("one", "two"))
    assert list(one.columns) == list(two.columns)
    np.testing.assert_allclose(one.to_numpy(), two.to_numpy(), rtol=0, atol=1e-5)


def _deterministic_objective(model, x0, cond, target, schedule, *, generator, **kwargs):  # type: ignore[no-untyped-def]
    """The DSM shape without random draws: the trainer's forecast mask makes cond and target
    deterministic, and the loss is normalised by each batch's own number of targets, which
    differs between windows (missing values), so a 2-rank step must re-weight to match 1 rank."""
    t = torch.full((x0.shape[0],), 0.5)
    out = model(x0 * (1.0 - target), t, cond)
    return (((out - x0) ** 2) * target).sum() / target.sum().clamp_min(1)


def _one_step(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    real_init, real_adam = Trainer.__init__, torch.optim.Adam

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_init(self, *args, **kwargs)
        self.objective = _deterministic_objective
        torch.save(self.network.state_dict(), Path(out) / f"init{world}_{rank}.pt")

    try:
        batch = 8 // world  # the same global batch of 8
        sets = ["train.steps=1", f"train.batch_size={batch}", "train.masking=forecast"]
        sets += ["train.lr=10", "model.dropout=0"]  # a large step, well above float32 rounding
        cfg = load_config(None, [*TINY, *sets, "data.horizon=4"])
        cfg = replace(cfg, train=replace(cfg.train, ema_decay=0.0))  # EMA = the live weights
        data = sine_frame_values(24 * 12, 3, 0.3, seed=0).reshape(24, 12, 3)
        torch.manual_seed(0)
        imputer = Imputer(cfg, Distributed(rank=rank, world_size=world, local_rank=rank))
        Trainer.__init__ = init  # type: ignore[method-assign]
        # plain SGD: the weights move by exactly −lr·gradient (Adam's first step is ≈ lr·sign(g)
        # and would hide a gradient of the wrong size)
        torch.optim.Adam = lambda params, lr, **kwargs: torch.optim.SGD(params, lr=lr)  # type: ignore[assignment,misc]
        imputer.fit(data, progress=False)
        assert imputer.network is not None
        torch.save(imputer.network.state_dict(), Path(out) / f"w{world}_{rank}.pt")
    finally:  # this runs in the test process too (world 1): put everything back
        Trainer.__init__ = real_init  # type: ignore[method-assign]
        torch.optim.Adam = real_adam  # type: ignore[misc]
        if world > 1:
            dist.destroy_process_group()


def test_a_two_rank_step_equals_a_one_rank_step_on_the_same_global_batch(tmp_path) -> None:
    """One shared shuffle split across ranks, DDP's gradient averaging and the re-weighting of
    each rank's normalised loss: one step of 2 ranks × 4 windows = one step of 1 rank × 8."""
    mp.spawn(_one_step, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    _one_step(0, 1, 0, str(tmp_path))

    def update(world: int) -> dict[str, torch.Tensor]:  # = −lr·gradient (SGD)
        after = torch.load(tmp_path / f"w{world}_0.pt", weights_only=True)
        before = torch.load(tmp_path / f"init{world}_0.pt", weights_only=True)
        return {k: after[k] - before[k] for k in after}

    one, two = update(1), update(2)
    assert max(float(v.abs().max()) for v in one.values()) > 1e-2  # the step moved the weights
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=1e-3, atol=1e-5)
