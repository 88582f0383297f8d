"""Forecaster fit → forecast → save → load with a tiny network, the `csdi forecast` command, and
the plumbing of the forecast mask's horizon and historical patterns into training."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import torch

from csdi import training
from csdi.checkpoint import CheckpointError
from csdi.config import load_config
from csdi.data.forecasting import forecast_windows
from csdi.forecast_cli import add_forecast_parser, cmd_forecast, future_index
from csdi.forecaster import Forecaster
from csdi.imputer import Imputer, InputError
from tests.conftest import TINY, sine_frame_values

HORIZON, CONTEXT = 4, 12


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):  # type: ignore[no-untyped-def]
    sets = [*TINY, "train.epochs=1", "data.stride=4", "train.calibration_windows=64"]
    sets += ["data.validation_fraction=0.2"]  # enough targets to fit a spread on
    cfg = load_config(None, [*sets, "name=tiny"])
    frame = pd.DataFrame(
        sine_frame_values(200, 2, 0.1, seed=0),
        columns=["a", "b"],
        index=pd.date_range("2024-01-01", periods=200, freq="h", name="time"),
    )
    forecaster = Forecaster(cfg, horizon=HORIZON, context=CONTEXT)
    forecaster.fit(frame, output_dir=tmp_path_factory.mktemp("fc"), progress=False)
    return forecaster, frame


def test_forecast_mix_masking_is_kept_and_trains() -> None:
    sets = [*TINY, "train.epochs=1", "data.stride=8", "train.masking=forecast_mix"]
    cfg = load_config(None, sets)
    forecaster = Forecaster(cfg, horizon=HORIZON, context=CONTEXT)
    assert forecaster.config.train.masking == "forecast_mix"
    values = sine_frame_values(120, 2, 0.1, seed=1)
    forecaster.fit(pd.DataFrame(values, columns=["a", "b"]), progress=False)
    assert forecaster.history is not None and np.isfinite(forecaster.history.train_loss).all()
    random = load_config(None, [*TINY, "train.masking=random"])
    assert Forecaster(random, horizon=HORIZON).config.train.masking == "forecast"


def test_fit_forecast_save_load(fitted, tmp_path) -> None:
    forecaster, frame = fitted
    assert forecaster.config.train.masking == "forecast"
    assert forecaster.history is not None and len(forecaster.history.epochs) == 1
    result = forecaster.forecast(frame, n_samples=5, seed=3)
    assert result.samples.shape == (1, 5, HORIZON, 2)
    assert np.isfinite(result.samples).all()
    assert result.quantiles.shape == (5, 1, HORIZON, 2)
    assert np.all(np.diff(result.quantiles, axis=0) >= 0)
    # the forecast depends on the history only through its last CONTEXT rows
    short = forecaster.forecast(frame.iloc[-CONTEXT:], n_samples=5, seed=3)
    np.testing.assert_array_equal(short.samples, result.samples)
    # a shorter horizon is the trained one's first steps (same seed, same draws)
    first = forecaster.forecast(frame, horizon=2, n_samples=5, seed=3)
    np.testing.assert_array_equal(first.samples, result.samples[:, :, :2])
    batch = forecaster.forecast(np.stack([frame.to_numpy()] * 3), n_samples=5, seed=3)
    assert batch.samples.shape == (3, 5, HORIZON, 2)

    forecaster.save(tmp_path / "saved")
    again = Forecaster.load(tmp_path / "saved")
    assert (again.horizon, again.context) == (HORIZON, CONTEXT)
    np.testing.assert_array_equal(
        again.forecast(frame, n_samples=5, seed=3).samples, result.samples
    )


def test_the_spread_is_calibrated_over_the_horizon_and_kept(fitted, tmp_path) -> None:
    """Training ends by fitting the spread on the validation windows (one level per feature,
    a slope over the horizon); forecasts keep their median with it or without, and a stored
    calibration for another horizon is refused in one line."""
    forecaster, frame = fitted
    spread = forecaster.imputer.spread
    assert spread is not None and spread.horizon == HORIZON and spread.level.shape == (2,)
    calibrated = forecaster.forecast(frame, n_samples=9, seed=3)
    raw = forecaster.forecast(frame, n_samples=9, seed=3, calibrated=False)
    np.testing.assert_allclose(calibrated.median, raw.median, rtol=1e-5, atol=1e-6)
    median = np.median(raw.samples, axis=1, keepdims=True)
    factor = spread.factor(CONTEXT + HORIZON, 9)[CONTEXT:]  # (H, K)
    np.testing.assert_allclose(
        calibrated.samples, median + factor * (raw.samples - median), rtol=1e-4, atol=1e-5
    )
    forecaster.save(tmp_path / "m")
    again = Forecaster.load(tmp_path / "m").imputer.spread
    assert again is not None and np.array_equal(again.level, spread.level)
    meta_path = tmp_path / "m" / "config.json"
    meta = json.loads(meta_path.read_text())
    meta["spread"]["horizon"] = HORIZON + 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="spread calibration for 2 features and horizon 5"):
        Forecaster.load(tmp_path / "m")


def test_bad_requests(fitted, tmp_path) -> None:
    forecaster, frame = fitted
    with pytest.raises(InputError, match=r"horizon must be in \[1, 4\]"):
        forecaster.forecast(frame, horizon=5)
    with pytest.raises(InputError, match="lacks the feature column"):
        forecaster.forecast(frame.rename(columns={"b": "c"}))
    with pytest.raises(ValueError, match="needs a horizon"):
        Forecaster(load_config(None, TINY))
    imputer = Imputer(load_config(None, [*TINY, "train.epochs=1"]))
    imputer.fit(sine_frame_values(48, 2, 0.1, seed=1).reshape(4, 12, 2), progress=False)
    imputer.save(tmp_path / "imp")
    with pytest.raises(CheckpointError, match="not a forecaster"):
        Forecaster.load(tmp_path / "imp")


def test_training_hides_the_horizon_and_uses_given_patterns(monkeypatch) -> None:
    """The Trainer hands the horizon and the dataset's patterns to the mask strategy."""
    seen: list[dict] = []
    real = training.make_cond_mask

    def spy(strategy, observed, generator, **kwargs):  # type: ignore[no-untyped-def]
        seen.append({"strategy": strategy, **kwargs})
        return real(strategy, observed, generator, **kwargs)

    monkeypatch.setattr(training, "make_cond_mask", spy)
    cfg = load_config(None, [*TINY, "train.epochs=1", "train.masking=historical"])
    values = sine_frame_values(60, 2, 0.0, seed=2)
    windows = forecast_windows(values, np.arange(16, 61, 4), 12, 4, ("a", "b"), with_cond=False)
    patterns = np.zeros((3, 16, 2), bool)  # all hidden: every observed entry becomes a target
    Imputer(cfg).fit_windows(windows, None, _unit_scaler(), patterns=patterns, progress=False)
    assert seen and all(s["strategy"] == "historical" for s in seen)
    assert all(s["patterns"].shape == (3, 2, 16) and not s["patterns"].any() for s in seen)

    seen.clear()
    fc = Forecaster(load_config(None, [*TINY, "train.epochs=1"]), horizon=4, context=12)
    fc.imputer.fit_windows(windows, None, _unit_scaler(), progress=False)
    assert seen and all(s["strategy"] == "forecast" and s["horizon"] == 4 for s in seen)
    cond = real("forecast", torch.ones(2, 2, 16), torch.Generator(), horizon=4)
    assert cond[..., :12].all() and not cond[..., 12:].any()


def _unit_scaler():  # type: ignore[no-untyped-def]
    from csdi.data.scaling import Scaler

    return Scaler(mean=np.zeros(2), std=np.ones(2))


def test_forecast_command(fitted, tmp_path) -> None:
    forecaster, frame = fitted
    model = tmp_path / "model"
    forecaster.save(model)
    history = tmp_path / "history.csv"
    frame.to_csv(history)
    parser = argparse.ArgumentParser(prog="csdi")
    add_forecast_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "forecast",
            "--model",
            str(model),
            "--input",
            str(history),
            "--horizon",
            "3",
            "--output",
            str(tmp_path / "out.csv"),
            "--samples",
            "4",
            "--steps",
            "3",
            "--samples-output",
            str(tmp_path / "s.npz"),
            "--quantiles",
            "0.1,0.9",
        ]
    )
    cmd_forecast(args)
    out = pd.read_csv(tmp_path / "out.csv", index_col=0, parse_dates=True)
    assert list(out.columns) == ["a", "b", "a_q0.1", "b_q0.1", "a_q0.9", "b_q0.9"]
    expected = pd.date_range(frame.index[-1] + pd.Timedelta(hours=1), periods=3, freq="h")
    assert list(out.index) == list(expected)
    assert (out["a_q0.1"] <= out["a_q0.9"]).all()
    with np.load(tmp_path / "s.npz") as f:
        assert f["samples"].shape == (4, 3, 2)
        np.testing.assert_allclose(np.median(f["samples"], axis=0), out[["a", "b"]], rtol=1e-5)
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["forecast", "--model", "m", "--input", "x", "--horizon", "0", "--output", "o"]
        )
    # a history the model cannot use: the one-line error names the file and the column
    lacking = tmp_path / "lacking.csv"
    frame[["a"]].to_csv(lacking)
    args.input, args.output = lacking, tmp_path / "out2.csv"
    with pytest.raises(InputError, match=rf"^{lacking}: .*'b'"):
        cmd_forecast(args)
    assert not args.output.exists()


def test_future_index() -> None:
    hourly = pd.date_range("2024-01-01", periods=5, freq="h")
    assert future_index(hourly, 2)[0] == pd.Timestamp("2024-01-01 05:00")
    assert list(future_index(pd.Index([0.0, 0.5, 1.0]), 2)) == [1.5, 2.0]
    monthly = pd.DatetimeIndex(["2024-01-31", "2024-02-29", "2024-03-31"])
    assert list(future_index(monthly, 2)) == [
        pd.Timestamp("2024-04-30"),
        pd.Timestamp("2024-05-31"),
    ]
    assert list(future_index(pd.Index(["x", "y"]), 2)) == [2, 3]
