"""MLflow tracking: params, per-epoch losses, artifacts and the pyfunc model; failures only warn."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csdi.config import load_config
from csdi.experiment import train_experiment
from csdi.tracking import HTTP_LIMITS
from tests.conftest import TINY, sine_frame_values


def _config(tmp_path):
    data = tmp_path / "s.csv"
    pd.DataFrame(sine_frame_values(60, 2, 0.2, seed=0), columns=["u", "v"]).to_csv(
        data, index=False
    )
    return load_config(
        None,
        [
            *TINY,
            "data.dataset=table",
            f"data.path={data}",
            "data.window=12",
            f"output_dir={tmp_path / 'model'}",
            "name=tracking-test",
        ],
    )


def test_run_is_tracked_with_model(tmp_path, monkeypatch) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path)
    train_experiment(cfg, progress=False)

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["tracking-test"])
    assert len(runs) == 1
    run_id = runs.run_id[0]
    assert runs["params.train.epochs"][0] == "2"
    history = mlflow.MlflowClient().get_metric_history(run_id, "valid_loss")
    assert [m.step for m in history] == [1, 2]

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    frame = pd.DataFrame(sine_frame_values(30, 2, 0.3, seed=1), columns=["u", "v"])
    out = model.predict(frame)
    assert list(out.columns[:2]) == ["u", "v"] and "u_q0.05" in out.columns
    assert not out.isna().any().any()
    obs = frame.notna().to_numpy()
    np.testing.assert_array_equal(out[["u", "v"]].to_numpy()[obs], frame.to_numpy()[obs])


def test_tracking_failure_warns_and_training_goes_on(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    cfg = _config(tmp_path)
    with pytest.warns(UserWarning, match="MLflow tracking disabled"):
        imputer = train_experiment(cfg, progress=False)
    assert imputer.history is not None and len(imputer.history.epochs) == 2
    assert (tmp_path / "model" / "model.pt").is_file()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_warns_once(cfg) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imputer = train_experiment(cfg, progress=False)
    tracking = [w for w in caught if "MLflow tracking disabled" in str(w.message)]
    assert len(tracking) == 1, [str(w.message) for w in caught]
    assert imputer.history is not None and len(imputer.history.epochs) == 2
    model = cfg.output_dir
    for name in ("model.pt", "last.pt", "config.json", "experiment.json"):
        assert (Path(model) / name).is_file(), name


def test_unreachable_tracking_server_costs_seconds_and_warns_once(tmp_path, monkeypatch) -> None:
    for name in HTTP_LIMITS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    start = time.monotonic()
    _train_warns_once(_config(tmp_path))
    assert time.monotonic() - start < 60  # MLflow's own retry defaults take ≈ 250 s


@pytest.mark.parametrize("damage", ["corrupt", "locked"])
def test_damaged_sqlite_store_warns_once(tmp_path, monkeypatch, damage: str) -> None:
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    if damage == "corrupt":
        db.write_bytes(b"this is not a database" * 100)
        _train_warns_once(_config(tmp_path))
        return
    lock = sqlite3.connect(db, timeout=0)
    lock.execute("CREATE TABLE held (x)")
    lock.execute("BEGIN EXCLUSIVE")  # another process holding the store
    try:
        _train_warns_once(_config(tmp_path))
    finally:
        lock.rollback()
        lock.close()


def test_logged_model_is_served_over_http(tmp_path, monkeypatch) -> None:
    """`mlflow models serve` (local environment) answers a frame with gaps on 127.0.0.1."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    train_experiment(_config(tmp_path), progress=False)
    mlflow.set_tracking_uri(uri)
    run_id = mlflow.search_runs(experiment_names=["tracking-test"]).run_id[0]

    port = _closed_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    argv = [str(mlflow_cli), "models", "serve", "-m", f"runs:/{run_id}/model"]
    argv += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    # the server runs uvicorn from the interpreter's own bin folder (a venv need not be active)
    path = f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": path}
    server = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the model server did not start in 120 s"
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        frame = pd.DataFrame(sine_frame_values(30, 2, 0.3, seed=1), columns=["u", "v"])
        body = json.dumps(
            {
                "dataframe_split": json.loads(
                    frame.to_json(orient="split", index=False, double_precision=15)
                )
            }
        ).encode()
        request = urllib.request.Request(
            f"{base}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as r:
            out = pd.DataFrame(json.loads(r.read())["predictions"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert {"u", "v", "u_q0.05", "v_q0.95"} <= set(out.columns) and len(out) == len(frame)
    assert not out.isna().any().any()
    obs = frame.notna().to_numpy()
    np.testing.assert_allclose(out[["u", "v"]].to_numpy()[obs], frame.to_numpy()[obs], rtol=1e-12)
    assert (out["u_q0.05"] <= out["u_q0.95"]).all()
