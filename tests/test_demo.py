"""`csdi demo` end to end with a tiny network: the oracle bounds the model from below."""

from __future__ import annotations

import json

from csdi.demo import run_demo
from tests.conftest import TINY


def test_demo_runs_and_reports_against_the_oracle(tmp_path) -> None:
    overrides = (
        *TINY,
        "data.n_windows=240",
        "data.window=12",
        "data.n_features=3",
        "sampling.n_samples=30",
    )
    scores = run_demo(tmp_path, steps=10, track=False, n_test=8, overrides=overrides)
    summary = json.loads((tmp_path / "demo_metrics.json").read_text())
    assert summary["scores"] == scores
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    # the exact conditional is the Bayes-optimal imputer: ten steps of a tiny network are worse
    assert scores["oracle"]["crps_exact"] < scores["csdi"]["crps_exact"]
    # 30 exact samples: the 5–95 % sample interval covers ≈ 0.84–0.87 of targets (12×8×3·½ of them)
    assert 0.75 < scores["oracle"]["coverage_90"] <= 0.97
