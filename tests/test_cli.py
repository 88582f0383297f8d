"""The command line end to end on small files the tests write, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from csdi.cli import build_parser, main, train_overrides
from csdi.config import ExperimentConfig, load_config
from tests.conftest import TINY, sine_frame_values


def _csv(path, n_rows: int = 80, missing: float = 0.2):
    frame = pd.DataFrame(sine_frame_values(n_rows, 3, missing, seed=0), columns=["a", "b", "c"])
    frame.insert(0, "time", pd.date_range("2024-01-01", periods=n_rows, freq="h"))
    frame.to_csv(path, index=False)
    return frame


def _one_line_error(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("csdi: error:") and "\n" not in err, err
    assert message in err, err


@pytest.fixture
def trained(tmp_path):
    data = tmp_path / "series.csv"
    frame = _csv(data)
    model = tmp_path / "model"
    sets = [a for s in TINY for a in ("--set", s)]
    argv = ["train", "--data", str(data), "--window", "16", "--output", str(model), "--no-tracking"]
    assert main([*argv, *sets]) == 0
    return data, frame, model


def test_train_then_impute_csv(trained, tmp_path, capsys) -> None:
    data, frame, model = trained
    out, npz = tmp_path / "imputed.csv", tmp_path / "samples.npz"
    argv = [
        "impute",
        "--model",
        str(model),
        "--input",
        str(data),
        "--output",
        str(out),
        "--samples",
        "5",
        "--steps",
        "4",
        "--quantiles",
        "0.1,0.9",
        "--samples-output",
        str(npz),
    ]
    assert main(argv) == 0
    result = pd.read_csv(out)
    assert list(result.columns) == [
        "time",
        "a",
        "b",
        "c",
        "a_q0.1",
        "b_q0.1",
        "c_q0.1",
        "a_q0.9",
        "b_q0.9",
        "c_q0.9",
    ]
    assert len(result) == len(frame) and not result[["a", "b", "c"]].isna().any().any()
    observed = frame[["a", "b", "c"]].notna().to_numpy()
    np.testing.assert_allclose(
        result[["a", "b", "c"]].to_numpy()[observed],
        frame[["a", "b", "c"]].to_numpy()[observed],
        rtol=1e-12,
    )
    with np.load(npz) as z:
        assert z["samples"].shape == (5, len(frame), 3)  # (S, T, K) aligned with the input
        assert list(z["feature_names"]) == ["a", "b", "c"]


def test_bad_inputs_get_one_line_errors(trained, tmp_path, capsys) -> None:
    data, frame, model = trained
    out = str(tmp_path / "o.csv")
    _one_line_error(
        capsys,
        ["impute", "--model", str(model), "--input", str(tmp_path / "nope.csv"), "--output", out],
        "nope.csv",
    )

    blocker = tmp_path / "plain_file"
    blocker.write_text("keep")
    argv = ["train", "--data", str(data), "--output", str(blocker), "--no-tracking"]
    assert main(argv) == 2  # refused before the plan is printed or any work is done
    captured = capsys.readouterr()
    assert captured.out == "" and "a file stands where a folder is needed" in captured.err
    assert blocker.read_text() == "keep"

    text = tmp_path / "text.csv"
    pd.DataFrame({"time": [1, 2, 3], "name": ["x", "y", "z"]}).to_csv(text, index=False)
    _one_line_error(
        capsys,
        ["train", "--data", str(text), "--output", str(tmp_path / "m2"), "--no-tracking"],
        "name",
    )

    bad_value = tmp_path / "bad_value.csv"
    f = frame.copy().astype({"b": object})
    f.loc[7, "b"] = "n/a?"
    f.to_csv(bad_value, index=False)
    _one_line_error(
        capsys,
        ["impute", "--model", str(model), "--input", str(bad_value), "--output", out],
        "n/a?",
    )

    dup = tmp_path / "dup.csv"
    f = frame.copy()
    f.loc[5, "time"] = f.loc[4, "time"]
    f.to_csv(dup, index=False)
    _one_line_error(
        capsys, ["impute", "--model", str(model), "--input", str(dup), "--output", out], "duplicate"
    )

    _one_line_error(
        capsys,
        [
            "train",
            "--data",
            str(data),
            "--window",
            "500",
            "--output",
            str(tmp_path / "m3"),
            "--no-tracking",
        ],
        "longer than the series",
    )

    inf = tmp_path / "inf.csv"
    f = frame.copy()
    f.loc[3, "a"] = np.inf
    f.to_csv(inf, index=False)
    _one_line_error(
        capsys, ["impute", "--model", str(model), "--input", str(inf), "--output", out], "inf"
    )

    far = tmp_path / "far.csv"  # finite, but its square overflows the model's float32
    f = frame.copy()
    f.loc[3, "a"] = 1e30
    f.to_csv(far, index=False)
    _one_line_error(
        capsys,
        ["impute", "--model", str(model), "--input", str(far), "--output", out],
        f"far.csv: column 'a' has the value 1e+30 at {f.loc[3, 'time']}",
    )
    train = ["train", "--output", str(tmp_path / "m4"), "--no-tracking", "--data"]
    _one_line_error(capsys, [*train, str(far)], "column 'a' has the value 1e+30")
    empty = tmp_path / "empty_column.csv"
    f = frame.copy()
    f["c"] = np.nan
    f.to_csv(empty, index=False)
    _one_line_error(capsys, [*train, str(empty)], "column(s) ['c'] have no values")

    gone = ["impute", "--model", str(tmp_path / "no_model"), "--input", str(data)]
    _one_line_error(capsys, [*gone, "--output", out], "model directory not found")

    meta = json.loads((model / "config.json").read_text())
    meta["format_version"] = 0
    (model / "config.json").write_text(json.dumps(meta))
    _one_line_error(
        capsys,
        ["impute", "--model", str(model), "--input", str(data), "--output", out],
        "model format 0",
    )
    _one_line_error(
        capsys, ["train", "--config", str(tmp_path / "none.toml")], "config file not found"
    )
    _one_line_error(
        capsys,
        [
            "train",
            "--data",
            str(data),
            "--output",
            str(tmp_path / "m4"),
            "--set",
            "train.lr=fast",
            "--no-tracking",
        ],
        "train.lr",
    )


def test_nothing_saved_is_lost_when_impute_fails(trained, tmp_path, capsys) -> None:
    _, _, model = trained
    before = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    existing = tmp_path / "keep.csv"
    existing.write_text("precious\n")
    _one_line_error(
        capsys,
        [
            "impute",
            "--model",
            str(model),
            "--input",
            str(tmp_path / "x.csv"),
            "--output",
            str(existing),
        ],
        "x.csv",
    )
    assert existing.read_text() == "precious\n"
    assert {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()} == before


def test_evaluate_applies_the_spread_calibration_unless_told(tmp_path, monkeypatch) -> None:
    """A protocol model trained with train.calibration_windows: `csdi evaluate` scores the
    calibrated samples (the median's MAE unchanged, the CRPS not), --uncalibrated the drawn.
    An odd number of samples: CSDI's MAE takes the lower of the middle two of an even number,
    which the calibration moves (np.median's midpoint it does not)."""
    monkeypatch.chdir(tmp_path)
    sets = [a for s in TINY for a in ("--set", s)]
    sets += ["--set", "data.n_windows=120", "--set", "data.window=12"]
    sets += ["--set", "train.calibration_windows=32"]
    model = tmp_path / "synthetic"
    config = Path(__file__).resolve().parents[1] / "pipelines" / "synthetic.toml"
    argv = ["train", "--config", str(config), "--output", str(model), "--no-tracking", *sets]
    assert main(argv) == 0
    assert json.loads((model / "config.json").read_text())["spread"] is not None
    evaluate = ["evaluate", "--model", str(model), "--max-windows", "6", "--samples", "9"]
    evaluate += ["--steps", "3", "--no-elbo", "--no-tracking", "--reports", str(tmp_path / "r")]
    records = []
    for flag in ([], ["--uncalibrated"]):
        assert main([*evaluate, *flag]) == 0
        records.append(json.loads((model / "metrics.json").read_text())["metrics"])
    assert records[0]["mae"] == pytest.approx(records[1]["mae"], rel=1e-5)
    assert records[0]["crps_exact"] != records[1]["crps_exact"]


def test_train_and_evaluate_a_config(tmp_path, capsys, monkeypatch) -> None:
    """`csdi train --config` then `csdi evaluate`: metrics.json and one appended record."""
    monkeypatch.chdir(tmp_path)
    sets = [a for s in TINY for a in ("--set", s)]
    sets += ["--set", "data.n_windows=120", "--set", "data.window=12"]
    model = tmp_path / "synthetic"
    config = Path(__file__).resolve().parents[1] / "pipelines" / "synthetic.toml"
    argv = ["train", "--config", str(config), "--output", str(model), "--no-tracking", *sets]
    assert main(argv) == 0
    argv = [
        "evaluate",
        "--model",
        str(model),
        "--max-windows",
        "3",
        "--samples",
        "3",
        "--sampler",
        "ddim",
        "--steps",
        "3",
        "--eta",
        "0",
        "--time-grid",
        "logsnr",
        "--reports",
        str(tmp_path / "r"),
        "--no-tracking",
        "--samples-output",
        str(tmp_path / "s.npz"),
    ]
    assert main(argv) == 0
    with np.load(tmp_path / "s.npz") as z:
        assert z["samples"].shape == (3, 3, 12, 6)  # (n, S, L, K): the first windows
    record = json.loads((model / "metrics.json").read_text())
    assert record["sampler"] == "ddim" and record["eta"] == 0 and record["n_samples"] == 3
    assert record["time_grid"] == "logsnr"
    assert record["protocol"]["n_windows"] == 3 and record["epochs"] == 2
    assert {"crps", "crps_exact", "mae", "rmse", "nrmse", "coverage_50", "coverage_90"} <= set(
        record["metrics"]
    )
    assert "energy_score" in record["metrics"]  # 3 samples: defined
    bound = record["elbo"]  # the held-out values' −ELBO, its terms adding up
    assert np.isfinite(bound["nats_per_value"]) and bound["mc_standard_error"] > 0
    terms = bound["prior"] + bound["reconstruction"] + bound["diffusion"]
    assert abs(terms - bound["nats_per_value"]) < 1e-5
    other_ratio = ["evaluate", "--model", str(model), "--missing-ratio", "0.5", "--no-tracking"]
    _one_line_error(capsys, other_ratio, "applies to physionet only")
    stored = json.loads((tmp_path / "r" / "synthetic" / "results.json").read_text())
    assert stored == [record]
    assert main([*argv, "--no-elbo"]) == 0
    assert json.loads((model / "metrics.json").read_text())["elbo"] is None


def test_train_drops_text_columns_on_request_and_impute_ignores_them(tmp_path, capsys) -> None:
    """A sensor export with a label column: refused by default (the message names the flag),
    trained with --drop-non-numeric; impute takes the model's columns and leaves the label."""
    data = tmp_path / "labelled.csv"
    frame = _csv(data)
    frame.insert(1, "site", "north")
    frame.to_csv(data, index=False)
    argv = ["train", "--data", str(data), "--window", "16", "--no-tracking"]
    argv += ["--output", str(tmp_path / "m")]
    sets = [a for s in TINY for a in ("--set", s)]
    _one_line_error(capsys, [*argv, *sets], "--drop-non-numeric")
    assert main([*argv, "--drop-non-numeric", *sets]) == 0
    assert "training for 2 epochs" in capsys.readouterr().out
    out = tmp_path / "imputed.csv"
    argv = ["impute", "--model", str(tmp_path / "m"), "--input", str(data), "--output", str(out)]
    assert main([*argv, "--samples", "3", "--steps", "3"]) == 0
    assert "site" not in pd.read_csv(out).columns


def test_train_in_steps_says_what_it_chose(tmp_path, capsys) -> None:
    """No budget flag: the own-data defaults (steps and minutes) are printed; --steps and
    --max-minutes replace them, and the run stops at the step budget."""
    data = tmp_path / "series.csv"
    _csv(data)
    sets = [a for s in TINY if not s.startswith("train.epochs") for a in ("--set", s)]
    argv = ["train", "--data", str(data), "--window", "16", "--no-tracking", *sets]
    argv += ["--output", str(tmp_path / "m"), "--steps", "5", "--max-minutes", "3"]
    argv += ["--set", "train.validate_every=2", "--set", "train.calibration_windows=64"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "training for 5 steps or 3 minutes, whichever comes first" in out
    assert "trained 5 steps (3 rounds)" in out
    assert "--set" in out and "cosine, gradient norm clipped at 1, Adam beta2 0.99)" in out
    assert "samples' spread calibrated on the validation windows" in out
    # --uncalibrated: the samples as drawn, the same median
    argv = ["impute", "--model", str(tmp_path / "m"), "--input", str(data), "--samples", "8"]
    tables = []
    for flag, name in (([], "cal.csv"), (["--uncalibrated"], "raw.csv")):
        assert main([*argv, "--output", str(tmp_path / name), *flag]) == 0
        tables.append(pd.read_csv(tmp_path / name, index_col=0))
    pd.testing.assert_frame_equal(tables[0][["a", "b", "c"]], tables[1][["a", "b", "c"]], rtol=1e-5)
    assert not tables[0].equals(tables[1])


def test_impute_refuses_to_overwrite_its_input(trained, tmp_path, capsys) -> None:
    """--output = --input would lose the user's data: refused unless --force; the file is
    untouched; with --force it is replaced (and the log says so)."""
    data, _, model = trained
    before = data.read_bytes()
    argv = ["impute", "--model", str(model), "--input", str(data), "--output", str(data)]
    argv += ["--samples", "2", "--steps", "2"]
    _one_line_error(capsys, argv, "also an input of this command")
    assert data.read_bytes() == before
    into_model = ["impute", "--model", str(model), "--input", str(data), "--output"]
    _one_line_error(capsys, [*into_model, str(model / "config.json")], "--force")
    assert main([*argv, "--force"]) == 0
    assert data.read_bytes() != before


def test_train_does_not_replace_a_trained_model_unasked(trained, capsys) -> None:
    """A second training into a model's folder would lose the model: refused (naming
    --resume and --force) and the weights are untouched; --force replaces them."""
    data, _, model = trained
    before = (model / "model.pt").read_bytes()
    sets = [a for s in TINY for a in ("--set", s)]
    argv = ["train", "--data", str(data), "--window", "16", "--output", str(model)]
    argv += ["--no-tracking", *sets, "--set", "train.seed=7"]
    _one_line_error(capsys, argv, "already holds a trained model; --resume continues it")
    assert (model / "model.pt").read_bytes() == before
    assert main([*argv, "--force"]) == 0
    assert (model / "model.pt").read_bytes() != before


def test_impute_takes_threads_as_train_does(trained, tmp_path, monkeypatch) -> None:
    """`--threads 1` sets torch's thread count once, and the sampler then runs one worker on
    it (no other change of the count)."""
    calls: list[int] = []
    real, before = torch.set_num_threads, torch.get_num_threads()

    def record(n: int) -> None:
        calls.append(n)
        real(n)

    monkeypatch.setattr(torch, "set_num_threads", record)
    data, _, model = trained
    argv = ["impute", "--model", str(model), "--input", str(data), "--samples", "2"]
    try:
        out = tmp_path / "o.csv"
        assert main([*argv, "--steps", "2", "--output", str(out), "--threads", "1"]) == 0
    finally:
        real(before)
    assert calls == [1]


def test_impute_checks_its_outputs_before_sampling(trained, tmp_path, capsys) -> None:
    """Two outputs that are one file, or an output that is a folder, are refused before any
    work (nothing written); a samples file in a folder that does not exist yet gets it."""
    data, _, model = trained
    argv = ["impute", "--model", str(model), "--input", str(data), "--samples", "2"]
    argv += ["--steps", "2"]
    same = tmp_path / "same.npz"
    _one_line_error(
        capsys, [*argv, "--output", str(same), "--samples-output", str(same)], "same file"
    )
    assert not same.exists()
    (tmp_path / "folder").mkdir()
    _one_line_error(capsys, [*argv, "--output", str(tmp_path / "folder")], "is a directory")
    blocker = tmp_path / "plain_file"
    blocker.write_text("keep")
    _one_line_error(
        capsys,
        [*argv, "--output", str(blocker / "out.csv")],
        f"{blocker}: File exists (a file stands where a folder is needed)",
    )
    assert blocker.read_text() == "keep"
    npz = tmp_path / "new" / "deeper" / "samples.npz"
    assert main([*argv, "--output", str(tmp_path / "out.csv"), "--samples-output", str(npz)]) == 0
    assert np.load(npz)["samples"].shape[0] == 2


def test_impute_ddim_defaults_to_deterministic_ddim_and_takes_eta(trained, tmp_path) -> None:
    """`--sampler ddim` is DDIM (η = 0), not the ancestral step; `--eta 1` is the ancestral one."""
    data, _, model = trained

    def samples(name: str, *extra: str) -> np.ndarray:
        npz = tmp_path / f"{name}.npz"
        argv = ["impute", "--model", str(model), "--input", str(data)]
        argv += ["--output", str(tmp_path / f"{name}.csv"), "--samples", "3", "--steps", "4"]
        assert main([*argv, "--samples-output", str(npz), *extra]) == 0
        with np.load(npz) as z:
            return z["samples"]

    ddim = samples("ddim", "--sampler", "ddim")
    np.testing.assert_array_equal(ddim, samples("eta0", "--sampler", "ddim", "--eta", "0"))
    ancestral = samples("ancestral", "--sampler", "ancestral")
    np.testing.assert_allclose(
        samples("eta1", "--sampler", "ddim", "--eta", "1"), ancestral, rtol=0, atol=1e-5
    )
    assert np.abs(ddim - ancestral).max() > 1e-3


def test_impute_denoise_returns_sampled_observed_values(trained, tmp_path, capsys) -> None:
    data, frame, model = trained
    out, npz = tmp_path / "denoised.csv", tmp_path / "d.npz"
    argv = ["impute", "--model", str(model), "--input", str(data), "--output", str(out)]
    argv += ["--samples", "4", "--steps", "8", "--denoise", "0.1", "--samples-output", str(npz)]
    assert main(argv) == 0
    with np.load(npz) as z:
        samples = z["samples"]  # (S, T, K)
    assert main([*argv, "--denoise-start", "30"]) == 0  # a randomised start: other draws
    with np.load(npz) as z:
        assert not np.array_equal(z["samples"], samples)
    _one_line_error(capsys, [*argv[:-4], "--denoise-start", "2"], "--denoise-start needs")
    observed = frame[["a", "b", "c"]].notna().to_numpy()
    assert np.isfinite(samples).all() and (samples.std(axis=0)[observed] > 0).all()


def test_impute_compile_flag_reaches_the_sampler(trained, tmp_path, eager_compile) -> None:
    """`--compile` puts the sampling network through torch.compile (dynamo's eager backend
    here, `eager_compile`) and writes the same imputation."""
    data, _, model = trained
    seen = eager_compile
    argv = ["impute", "--model", str(model), "--input", str(data), "--samples", "3"]
    argv += ["--steps", "3", "--sampler", "ddim"]
    assert main([*argv, "--output", str(tmp_path / "plain.csv")]) == 0
    assert not seen
    assert main([*argv, "--output", str(tmp_path / "compiled.csv"), "--compile"]) == 0
    assert len(seen) == 1
    plain, compiled = (pd.read_csv(tmp_path / f"{n}.csv") for n in ("plain", "compiled"))
    np.testing.assert_allclose(
        compiled.select_dtypes("number"), plain.select_dtypes("number"), rtol=1e-4, atol=1e-4
    )


def test_recipes_apply_over_the_defaults_and_under_set(tmp_path) -> None:
    """`--recipe` names a whole training recipe: over a config and over the own-data defaults,
    with --set still winning; without it a config keeps its own settings."""
    config = Path(__file__).resolve().parents[1] / "pipelines" / "physionet_10.toml"

    def config_of(*argv: str) -> ExperimentConfig:
        args = build_parser().parse_args(["train", *argv])
        return load_config(args.config, train_overrides(args))

    own = ["--data", str(tmp_path / "x.csv"), "--output", str(tmp_path / "m")]
    plain = config_of("--config", str(config))
    fast = config_of("--config", str(config), "--recipe", "fast", "--set", "train.lr=5e-3")
    csdi_own = config_of(*own, "--recipe", "csdi")
    own_default = config_of(*own)
    narrow = config_of("--config", str(config), "--recipe", "fast_c32")
    assert (plain.model.n_heads, plain.model.dropout, plain.train.lr_schedule) == (
        8, 0.1, "milestones"
    )  # fmt: skip
    assert (fast.model.n_heads, fast.model.dropout, fast.train.lr_schedule) == (2, 0.0, "cosine")
    assert fast.train.lr == 5e-3 and fast.train.warmup_steps == 200  # --set over the recipe
    assert (csdi_own.model.n_heads, csdi_own.model.dropout, csdi_own.train.lr) == (8, 0.1, 1e-3)
    assert csdi_own.train.lr_schedule == "milestones" and csdi_own.train.warmup_steps == 0
    assert csdi_own.diffusion.prior_mean == "interpolation"  # own-data defaults the recipe leaves
    widths = (plain.model.channels, csdi_own.model.channels, own_default.model.channels)
    assert widths == (64, 64, 32)  # the csdi recipe restores CSDI's width over the own defaults
    assert narrow.model.channels == 32 and narrow.model.n_heads == 2  # fast_c32: fast, narrower
    # a forecaster also gets the seasonal prior and the spread calibration, unless --set says
    # otherwise
    forecast = config_of(*own, "--horizon", "6")
    no_season = config_of(*own, "--horizon", "6", "--set", "diffusion.prior_season=none")
    assert own_default.diffusion.prior_season == "none"
    assert forecast.diffusion.prior_season == "auto" and forecast.data.horizon == 6
    assert forecast.train.calibration_windows == 64 and own_default.train.calibration_windows == 0
    assert no_season.diffusion.prior_season == "none"


def _interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


def test_resume_continues_only_the_same_training(trained, tmp_path, capsys, caplog) -> None:
    """--resume on other columns or another window is refused before anything is written
    (experiment.json stays the run's); on a folder with nothing to resume it says so and
    trains from the start."""
    data, frame, model = trained
    saved = (model / "experiment.json").read_text()
    sets = [a for s in TINY for a in ("--set", s)]
    argv = ["train", "--output", str(model), "--no-tracking", "--resume", *sets]
    renamed = tmp_path / "renamed.csv"
    frame.rename(columns={"c": "d"}).to_csv(renamed, index=False)
    _one_line_error(
        capsys, [*argv, "--data", str(renamed), "--window", "16"], "--resume: the data's columns"
    )
    _one_line_error(
        capsys, [*argv, "--data", str(data), "--window", "12"], "--resume: data.window is 12"
    )
    assert (model / "experiment.json").read_text() == saved
    older = {k: v for k, v in json.loads(saved).items()}  # a run saved before data.date_order
    del older["data"]["date_order"]
    (model / "experiment.json").write_text(json.dumps(older))
    assert main([*argv, "--data", str(data), "--window", "16"]) == 0  # resumes
    stale = (model / "last.pt").read_bytes()
    forced = ["train", "--data", str(data), "--window", "16", "--output", str(model), "--force"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("csdi.imputer.Trainer.fit", _interrupt)
        assert main([*forced, "--no-tracking", *sets]) == 130
    assert not (model / "last.pt").exists() or (model / "last.pt").read_bytes() != stale
    assert "is as it was before" in capsys.readouterr().err
    fresh = ["train", "--data", str(data), "--window", "16", "--no-tracking", "--resume", *sets]
    with caplog.at_level("WARNING"):
        assert main([*fresh, "--output", str(tmp_path / "new")]) == 0
    assert "nothing to resume" in caplog.text and (tmp_path / "new" / "model.pt").is_file()


def test_impute_refuses_a_nan_eta_and_writes_samples_where_told(trained, tmp_path, capsys) -> None:
    data, frame, model = trained
    base = ["impute", "--model", str(model), "--input", str(data), "--samples", "2"]
    with pytest.raises(SystemExit):  # argparse's usage error
        main([*base, "--output", str(tmp_path / "o.csv"), "--eta", "nan"])
    assert "expected a number ≥ 0; got nan" in capsys.readouterr().err
    _one_line_error(capsys, [*base, "--output", str(tmp_path / "o.npz")], "name it .csv")
    out, samples = tmp_path / "o.parquet", tmp_path / "draws"
    argv = [*base, "--steps", "2", "--output", str(out), "--samples-output", str(samples)]
    assert main(argv) == 0
    assert pd.read_parquet(out)["a"].notna().all() and len(pd.read_parquet(out)) == len(frame)
    with np.load(samples) as z:
        assert z["samples"].shape == (2, len(frame), 3) and len(z["time"]) == len(frame)


def test_missing_value_codes_are_kept_with_the_model(tmp_path, capsys) -> None:
    """--missing-values=-999 at training: the code is missing there and in every file the
    model imputes later; the output holds imputed values where the file had -999."""
    data = tmp_path / "coded.csv"
    frame = _csv(tmp_path / "plain.csv", missing=0.0)
    coded = frame.copy()
    coded.loc[[3, 10, 11], "b"] = -999
    coded.to_csv(data, index=False)
    model = tmp_path / "model"
    sets = [a for s in TINY for a in ("--set", s)]
    argv = ["train", "--data", str(data), "--window", "16", "--output", str(model)]
    assert main([*argv, "--no-tracking", "--missing-values=-999", *sets]) == 0
    assert json.loads((model / "config.json").read_text())["config"]["data"]["missing_values"] == [
        -999.0
    ]
    out = tmp_path / "out.csv"
    argv = ["impute", "--model", str(model), "--input", str(data), "--output", str(out)]
    assert main([*argv, "--samples", "2", "--steps", "2"]) == 0
    b = pd.read_csv(out)["b"]
    assert (b > -10).all() and b.drop([3, 10, 11]).equals(frame["b"].drop([3, 10, 11]))


def test_train_data_with_a_horizon_trains_a_forecaster(tmp_path, capsys) -> None:
    """`csdi train --data FILE --horizon H`: windows of context + H rows with the future
    hidden, the forecasting sampler stored, and `csdi forecast` reads the model; the flags
    that do not fit are refused."""
    data = tmp_path / "series.csv"
    frame = _csv(data, n_rows=120, missing=0.1)
    model = tmp_path / "fc"
    sets = [a for s in TINY for a in ("--set", s)]
    argv = ["train", "--data", str(data), "--horizon", "4", "--context", "8", "--no-tracking"]
    assert main([*argv, "--output", str(model), *sets]) == 0
    saved = json.loads((model / "config.json").read_text())["config"]
    assert [saved["data"][k] for k in ("horizon", "context", "window")] == [4, 8, 12]
    assert saved["train"]["masking"] == "forecast" and saved["sampling"]["sampler"] == "dpm_solver"
    out = tmp_path / "forecast.csv"
    argv = ["forecast", "--model", str(model), "--input", str(data), "--horizon", "4"]
    assert main([*argv, "--output", str(out), "--samples", "3", "--steps", "3"]) == 0
    result = pd.read_csv(out, parse_dates=["time"])
    assert result["time"].tolist() == list(
        pd.date_range(frame["time"].iloc[-1], periods=5, freq="h")[1:]
    )
    assert result[["a", "b", "c"]].notna().all().all()
    base = ["train", "--data", str(data), "--output", str(tmp_path / "x"), "--no-tracking"]
    _one_line_error(capsys, [*base, "--context", "8"], "--context needs --horizon")
    _one_line_error(capsys, [*base, "--horizon", "4", "--window", "8"], "drop --window")


def test_a_file_without_the_models_time_column_is_told_so(tmp_path, capsys) -> None:
    data = tmp_path / "series.csv"
    frame = _csv(data)
    model = tmp_path / "model"
    sets = [a for s in TINY for a in ("--set", s)]
    argv = ["train", "--data", str(data), "--time-column", "time", "--window", "16"]
    assert main([*argv, "--output", str(model), "--no-tracking", *sets]) == 0
    renamed = tmp_path / "renamed.csv"
    frame.rename(columns={"time": "stamp"}).to_csv(renamed, index=False)
    argv = ["impute", "--model", str(model), "--input", str(renamed), "--samples", "2"]
    _one_line_error(
        capsys, [*argv, "--output", str(tmp_path / "o.csv")], "the model was trained with"
    )
    assert (
        main([*argv, "--steps", "2", "--output", str(tmp_path / "o.csv"), "--time-column", "stamp"])
        == 0
    )
