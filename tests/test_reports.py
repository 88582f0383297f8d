"""Reports: aggregation over seeds, best-of-column rules, references, plots, self-contained HTML."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from csdi.report_cli import add_report_parser, cmd_report
from csdi.reports import (
    PHYSIONET_REFERENCES,
    ReportError,
    best_rows,
    build_report,
    format_metric,
    load_window_samples,
    pit_values,
    references_for,
    summarise,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def record(method: str, ratio: float, seed: int, crps: float, **kw: Any) -> dict[str, Any]:
    metrics = {"crps": crps, "crps_exact": crps / 2, "mae": crps * 0.9, "rmse": crps * 1.3,
               "coverage_50": kw.pop("c50", 0.5), "coverage_90": kw.pop("c90", 0.9),
               "crps_sum": 0.0, "n_targets": 100.0}  # fmt: skip
    return {
        "dataset": "physionet", "units": "normalised", "method": method, "seed": seed,
        "protocol": {"missing_ratio": ratio, "fold": 0, "n_windows": 799}, "metrics": metrics,
        "n_samples": kw.pop("n_samples", 100), "sampler": kw.pop("sampler", None),
        "steps": kw.pop("steps", None), "impute_seconds": kw.pop("seconds", 1.0),
        "command": f"csdi baselines --methods {method}", **kw,
    }  # fmt: skip


def test_mean_and_std_over_seeds_and_a_rerun_replaces_its_seed() -> None:
    recs = [
        record("linear", 0.1, 0, 0.9),  # replaced by the rerun of seed 0 below
        record("linear", 0.1, 0, 0.2),
        record("linear", 0.1, 1, 0.4),
        record("mean", 0.1, 0, 1.0),
    ]
    (section,) = summarise(recs)
    linear = next(r for r in section.rows if r.method == "linear")
    assert linear.seeds == (0, 1)
    assert linear.mean["crps"] == pytest.approx(0.3)
    assert linear.std["crps"] == pytest.approx(np.sqrt(0.02))  # ddof 1: ((0.1)² · 2 / 1)^½
    mean = next(r for r in section.rows if r.method == "mean")
    assert np.isnan(mean.std["crps"])  # one seed: no spread to report
    assert [r.method for r in section.rows] == ["linear", "mean"]  # sorted by crps
    assert "crps_sum" not in section.columns  # imputation protocol: no horizon


def test_protocols_and_sampler_settings_are_kept_apart() -> None:
    recs = [
        record("linear", 0.1, 0, 0.5),
        record("linear", 0.5, 0, 0.6),
        record("csdi", 0.1, 0, 0.3, sampler="ancestral", steps=50),
        record("csdi", 0.1, 0, 0.35, sampler="ancestral", steps=10),
    ]
    sections = summarise(recs)
    assert [s.protocol["missing_ratio"] for s in sections] == [0.1, 0.5]
    labels = [r.label for r in sections[0].rows]
    assert labels == ["csdi (ancestral, 50 steps)", "csdi (ancestral, 10 steps)", "linear"]


def test_models_trained_for_different_times_are_kept_apart() -> None:
    """Accuracy per training hour: two models of one sampler setting are two rows, each
    saying how long it trained."""
    kw: dict[str, Any] = {"sampler": "dpm_solver", "steps": 10}
    recs = [
        record("csdi", 0.1, 0, 0.3, epochs=9, train_seconds=4500.0, model_dir="runs/a", **kw),
        record("csdi", 0.1, 0, 0.4, epochs=3, train_seconds=1230.0, **kw),
    ]
    (section,) = summarise(recs)
    assert [r.details for r in section.rows] == [
        "9 epochs, 75 min training, model runs/a",
        "3 epochs, 20 min training",
    ]


def test_list_valued_protocols_group_like_any_other() -> None:
    """PM2.5's protocol holds its test months as a list (JSON has no tuples)."""
    recs = [record("linear", 0.1, s, 0.5 + s) for s in (0, 1)]
    for r in recs:
        r["protocol"] = {"test_months": [3, 6, 9, 12], "window": 36}
    (section,) = summarise(recs)
    assert section.protocol["test_months"] == [3, 6, 9, 12] and section.rows[0].seeds == (0, 1)


def test_best_is_lowest_error_and_coverage_closest_to_nominal() -> None:
    recs = [
        record("a", 0.1, 0, 0.30, c50=0.10, c90=0.95),
        record("b", 0.1, 0, 0.20, c50=0.45, c90=0.80),
        record("c", 0.1, 0, 0.20, c50=0.70, c90=0.99),
    ]
    (section,) = summarise(recs)
    index = {r.method: i for i, r in enumerate(section.rows)}
    assert best_rows(section, "crps") == {index["b"], index["c"]}  # a tie marks both
    assert best_rows(section, "coverage_90") == {index["a"]}  # |0.95 − 0.9| < |0.8 − 0.9|
    assert best_rows(section, "coverage_50") == {index["b"]}


def test_pit_is_uniform_for_a_calibrated_sampler_and_half_at_the_median() -> None:
    rng = np.random.default_rng(0)
    n, s = 4000, 99
    scale = rng.uniform(0.5, 2.0, size=(n, 1, 1))
    truth = rng.normal(size=(n, 1, 1)) * scale  # (N, L=1, K=1)
    samples = rng.normal(size=(n, s, 1, 1)) * scale[:, None]  # the same law as the truth
    pit = pit_values(samples, truth, np.ones_like(truth, dtype=bool))
    counts = np.histogram(pit, bins=10, range=(0, 1))[0]
    # Each decile holds Binomial(4000, 0.1) ± ~19 plus the discreteness of S = 99 samples;
    # 5 standard deviations is a bound a calibrated sampler fails with probability < 1e-5.
    assert np.all(np.abs(counts - 400) < 5 * 19)
    point = np.repeat(np.arange(5.0)[None, :, None, None], 2, axis=0)  # samples 0..4
    at_median = np.full((2, 1, 1), 2.0)
    assert np.allclose(pit_values(point, at_median, np.ones((2, 1, 1), bool)), 0.5)


def samples_file(path: Path, method: str = "iterative") -> Path:
    rng = np.random.default_rng(1)
    n, s, ll, k = 3, 8, 12, 2
    values = rng.normal(size=(n, ll, k))
    cond = rng.random((n, ll, k)) < 0.6
    samples = np.where(cond[:, None], values[:, None], rng.normal(size=(n, s, ll, k)))
    np.savez(path, samples=samples, values=values, cond=cond, targets=~cond,
             feature_names=np.array(["HR", "Temp"]), method=np.array(method))  # fmt: skip
    return path


def test_build_report_is_self_contained_with_references_and_plots(tmp_path: Path) -> None:
    recs = [record(m, r, seed, c + 0.01 * seed)
            for m, base in (("linear", 0.5), ("iterative", 0.4))
            for r, c in ((0.1, base), (0.5, base + 0.1), (0.9, base + 0.2))
            for seed in (0, 1)]  # fmt: skip
    recs += [record("csdi", 0.5, 0, 0.3, sampler="ode", steps=st, seconds=st / 5.0)
             for st in (5, 20, 50)]  # fmt: skip
    paths = build_report(
        recs, output_dir=tmp_path, title="PhysioNet", references=PHYSIONET_REFERENCES,
        samples=[samples_file(tmp_path / "s.npz")], command="csdi report --experiment physionet",
    )  # fmt: skip
    expected_plots = {"crps_vs_missing_ratio", "calibration", "crps_vs_steps", "imputed_windows_0"}
    assert expected_plots <= set(paths)
    for name in expected_plots:
        assert paths[name].read_bytes().startswith(PNG_MAGIC)

    md = paths["markdown"].read_text()
    assert "csdi report --experiment physionet" in md
    assert "as quoted, to be checked against the paper" in md
    assert "| *CSDI (published)* |" in md and "*0.238*" in md and "*0.481*" in md
    # At 10 %, iterative (0.40 ± 0.007) beats linear: its crps cell is bold.
    assert "| iterative | 100 | 2 | **0.405 ± 0.007** |" in md
    assert md.count("## physionet: missing ratio") == 3

    page = paths["html"].read_text()
    imgs = re.findall(r"<img [^>]*>", page)
    assert len(imgs) == len(expected_plots)
    assert all('src="data:image/png;base64,' in tag for tag in imgs)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    assert page.count('class="reference"') == 3 and page.count("<table") == 3
    assert page.count('class="best"') >= 3 * 6  # every column of every table marks a best


def test_optional_plots_are_left_out_without_their_data(tmp_path: Path) -> None:
    paths = build_report([record("mean", 0.1, 0, 1.0)], output_dir=tmp_path, title="t")
    assert set(paths) == {"calibration", "markdown", "html"}


def test_bad_samples_file_and_empty_records_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, samples=np.zeros((1, 2, 3, 4)))
    with pytest.raises(ReportError, match=r"bad.npz: samples file lacks \['values'"):
        load_window_samples(bad)
    with pytest.raises(ReportError, match="not found"):
        load_window_samples(tmp_path / "nowhere.npz")
    with pytest.raises(ReportError, match="no results records"):
        build_report([], output_dir=tmp_path, title="t")
    with pytest.raises(ReportError, match="record 0 lacks"):
        summarise([{"method": "x"}])


def test_references_are_the_quoted_csdi_physionet_figures() -> None:
    published = [r for r in references_for("physionet") if "published" in r.label]
    refs = {r.protocol["missing_ratio"]: r.metrics for r in published}
    assert refs == {0.1: {"crps": 0.238, "mae": 0.217}, 0.5: {"crps": 0.330, "mae": 0.301},
                    0.9: {"crps": 0.522, "mae": 0.481}}  # fmt: skip
    (checkpoint,) = [r for r in references_for("physionet") if "checkpoint" in r.label]
    assert checkpoint.protocol == {"missing_ratio": 0.1, "n_windows": 80}  # fold0_test[:80] only
    assert checkpoint.metrics == {"crps": 0.2343, "mae": 0.2157, "rmse": 0.4929}
    assert references_for("synthetic") == ()
    assert references_for("pm25")[0].metrics == {"crps": 0.108, "mae": 9.60}
    sums = {r.label: r.metrics["crps_sum"] for r in references_for("exchange_rate_nips")}
    assert sums == {"TimeGrad (published)": 0.006, "GP-copula (published)": 0.007}


def test_small_values_keep_three_significant_digits() -> None:
    """CRPS-sum on exchange rates is ≈ 0.006: three decimals would hide every difference."""
    assert [format_metric(v) for v in (0.00618, 0.0523, 0.238, 9.6, 0.0)] == [
        "0.00618", "0.0523", "0.238", "9.600", "0.000"
    ]  # fmt: skip


def test_cli_report_reads_results_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "physionet").mkdir()
    recs = [record("linear", 0.1, 0, 0.5), record("linear", 0.5, 0, 0.6)]
    (tmp_path / "physionet" / "results.json").write_text(json.dumps(recs))
    parser = argparse.ArgumentParser(prog="csdi")
    add_report_parser(parser.add_subparsers(dest="command"))
    cmd_report(parser.parse_args(["report", "--experiment", "physionet", "--reports",
                                  str(tmp_path)]))  # fmt: skip
    assert (tmp_path / "physionet" / "report.html").is_file()
    assert "2 records" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no results records"):
        cmd_report(parser.parse_args(["report", "--experiment", "empty", "--reports",
                                      str(tmp_path)]))  # fmt: skip


def test_models_with_an_elbo_get_a_nelbo_column_and_point_methods_none() -> None:
    recs = [
        record("csdi", 0.1, 0, 0.3, elbo={"nats_per_value": 0.8}),
        record("csdi", 0.1, 1, 0.3, elbo={"nats_per_value": 0.6}),
        record("linear", 0.1, 0, 0.5),
    ]
    (section,) = summarise(recs)
    assert "nelbo" in section.columns
    csdi = next(r for r in section.rows if r.method == "csdi")
    assert csdi.mean["nelbo"] == pytest.approx(0.7)
    linear = next(r for r in section.rows if r.method == "linear")
    assert "nelbo" not in linear.mean
    assert "nelbo" not in summarise([record("linear", 0.1, 0, 0.5)])[0].columns
