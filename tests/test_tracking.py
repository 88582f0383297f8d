"""MLflow tracking: params, per-epoch losses, artifacts and the pyfunc model; failures only warn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from csdi.config import load_config
from csdi.experiment import train_experiment
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
