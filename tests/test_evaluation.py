"""Baselines under a protocol: what they see, what is scored, and the records they leave."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest

from csdi import evaluation
from csdi.config import DataConfig
from csdi.evaluation import evaluate_baseline, visible_values
from csdi.experiment import load_splits
from csdi.report_cli import add_baselines_parser, cmd_baselines
from csdi.results import read_records

SYN = DataConfig(dataset="synthetic", n_windows=60, n_features=3, window=12, missing_ratio=0.5)


def test_mean_baseline_scores_the_training_mean_on_the_held_out_targets(tmp_path: Path) -> None:
    # Independent computation: the mean baseline predicts, at every held-out target of a test
    # window, the feature's mean over the training split; its samples are identical, so
    # crps_exact and mae are both mean |y − μ_k| over the targets (exact up to float rounding).
    splits = load_splits(SYN)
    mu = splits.train.values.reshape(-1, 3).astype(np.float64).mean(axis=0)  # (K,) all observed
    y = splits.test.values.astype(np.float64)
    t = splits.test.targets
    expected = np.abs(y - mu)[t].mean()

    rec = evaluate_baseline("mean", SYN, n_samples=3, seed=0, reports_dir=tmp_path, track=False)
    assert rec["metrics"]["mae"] == pytest.approx(expected, rel=1e-9)
    assert rec["metrics"]["crps_exact"] == pytest.approx(expected, rel=1e-9)
    assert rec["metrics"]["n_targets"] == t.sum()
    assert (rec["method"], rec["sampler"], rec["steps"]) == ("mean", None, None)
    assert rec["protocol"]["n_windows"] == len(splits.test) == 10
    assert rec["units"] == "original" and rec["deterministic"] is True


def test_baseline_sees_only_cond_and_the_training_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict = {}
    real = evaluation.run_baseline

    def spy(name, values, **kw):  # type: ignore[no-untyped-def]
        seen["values"], seen["train"] = values, kw["train_values"]
        return real(name, values, **kw)

    monkeypatch.setattr(evaluation, "run_baseline", spy)
    splits = load_splits(SYN)
    evaluate_baseline("linear", SYN, n_samples=2, seed=0, reports_dir=None, track=False)
    test = splits.test
    assert np.array_equal(np.isnan(seen["values"]), ~test.cond)  # the targets are hidden
    assert np.array_equal(seen["values"][test.cond], test.values[test.cond])
    assert seen["train"].shape == splits.train.values.shape
    assert not np.isnan(seen["train"]).any()  # synthetic training windows are fully observed

    evaluate_baseline(
        "linear", SYN, n_samples=2, seed=0, reports_dir=None, track=False, train_windows=0
    )
    assert seen["train"] is None


def test_records_are_appended_never_lost(tmp_path: Path) -> None:
    for name in ("mean", "locf"):
        evaluate_baseline(name, SYN, n_samples=2, seed=1, reports_dir=tmp_path, track=False)
    records = read_records(tmp_path / "synthetic" / "results.json")
    assert [r["method"] for r in records] == ["mean", "locf"]
    assert all(r["seed"] == 1 and r["n_samples"] == 2 for r in records)


def test_iterative_samples_are_written_for_band_plots(tmp_path: Path) -> None:
    out = tmp_path / "s.npz"
    rec = evaluate_baseline(
        "iterative", SYN, n_samples=4, seed=0, reports_dir=None, track=False,
        options={"max_iter": 2}, samples_output=out, samples_windows=3,
    )  # fmt: skip
    assert rec["options"] == {"max_iter": 2} and rec["deterministic"] is False
    with np.load(out) as f:
        assert f["samples"].shape == (3, 4, 12, 3)
        assert str(f["method"]) == "iterative"
        x, v, c, t = f["samples"], f["values"], f["cond"], f["targets"]
    per_entry = np.moveaxis(x, 1, -1)  # (n, L, K, S)
    # Every sample keeps the given values; the held-out ones differ between samples.
    assert np.allclose(per_entry[c], v[c][:, None], atol=1e-5)
    assert (per_entry[t].std(axis=1) > 0).mean() > 0.9


def test_unknown_baseline_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"unknown baseline 'nope'; valid: .*iterative"):
        evaluate_baseline("nope", SYN, n_samples=2, seed=0, reports_dir=None, track=False)


def test_mlflow_run_holds_the_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rec = evaluate_baseline("mean", SYN, n_samples=2, seed=0, reports_dir=None, track=True,
                            benchmark="evaluation-test")  # fmt: skip
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["evaluation-test"])
    assert len(runs) == 1
    assert runs["metrics.crps"].iloc[0] == pytest.approx(rec["metrics"]["crps"])
    assert runs["params.method"].iloc[0] == "mean"


def test_cli_baselines_runs_each_method_under_the_config(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "syn.toml"
    config.write_text(
        'name = "syn"\n[data]\ndataset = "synthetic"\nn_windows = 60\nn_features = 3\n'
        "window = 12\nmissing_ratio = 0.5\n"
    )
    parser = argparse.ArgumentParser(prog="csdi")
    add_baselines_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["baselines", "--config", str(config), "--methods", "mean,knn", "--samples", "2",
         "--reports", str(tmp_path), "--no-tracking", "--option", "knn.n_neighbors=3"]
    )  # fmt: skip
    cmd_baselines(args)
    records = json.loads((tmp_path / "syn" / "results.json").read_text())
    assert [r["method"] for r in records] == ["mean", "knn"]
    assert records[1]["options"] == {"n_neighbors": 3} and records[0]["options"] == {}
    assert "mean: crps=" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["baselines", "--config", str(config), "--methods", "mean,magic"])


def _physionet_available() -> bool:
    root = Path(os.environ.get("CSDI_DATA_DIR", "data/raw"))
    return (root / "physionet2012" / "set-a.tar.gz").is_file()


@pytest.mark.skipif(not _physionet_available(), reason="PhysioNet archive not in CSDI_DATA_DIR")
def test_physionet_metrics_are_in_normalised_units(tmp_path: Path) -> None:
    # As CSDI reports: errors of normalised values. The mean baseline predicts the training
    # split's mean of the normalised observed values per feature.
    cfg = DataConfig(dataset="physionet", missing_ratio=0.1, fold=0)
    splits = load_splits(cfg)
    train = visible_values(splits.train)  # (N, 48, 35), NaN where unobserved
    mu = np.nanmean(train.reshape(-1, 35), axis=0)
    test = splits.test.subset(np.arange(20))
    expected = np.abs(test.values.astype(np.float64) - mu)[test.targets].mean()
    rec = evaluate_baseline(
        "mean", cfg, n_samples=2, seed=0, max_windows=20, reports_dir=tmp_path, track=False
    )
    assert rec["units"] == "normalised"
    assert rec["protocol"]["missing_ratio"] == 0.1 and rec["protocol"]["n_windows"] == 20
    assert rec["metrics"]["mae"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.skipif(not _physionet_available(), reason="PhysioNet archive not in CSDI_DATA_DIR")
def test_physionet_ratios_share_their_training_data() -> None:
    """What `csdi evaluate --missing-ratio` rests on: the ratio changes only which test entries
    are held out — training and test values, observed entries and scaling are the same."""
    low = load_splits(DataConfig(dataset="physionet", missing_ratio=0.1, fold=0))
    high = load_splits(DataConfig(dataset="physionet", missing_ratio=0.5, fold=0))
    for a, b in [(low.train, high.train), (low.test, high.test)]:
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.observed, b.observed)
    np.testing.assert_array_equal(low.scaler.std, high.scaler.std)
    n_low, n_high = low.test.targets.sum(), high.test.targets.sum()
    assert 4.5 < n_high / n_low < 5.5  # 50 % of the observed entries held out against 10 %
