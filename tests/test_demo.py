"""`csdi demo` end to end with a tiny network (its settings through `--set`): the oracle bounds
the model from below."""

from __future__ import annotations

import json

from csdi.cli import main
from tests.conftest import TINY


def test_demo_runs_and_reports_against_the_oracle(tmp_path) -> None:
    overrides = (
        *TINY,
        "data.n_windows=240",
        "data.window=12",
        "data.n_features=3",
        "sampling.n_samples=30",
    )
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["demo", "--output", str(tmp_path), "--steps", "10", "--no-tracking", *sets]) == 0
    scores = json.loads((tmp_path / "demo_metrics.json").read_text())["scores"]
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    # the exact conditional is the Bayes-optimal imputer: ten steps of a tiny network are worse
    assert scores["oracle"]["crps_exact"] < scores["csdi"]["crps_exact"]
    # 30 exact samples: the 5–95 % sample interval covers ≈ 0.84–0.87 of targets (12×40×3·½)
    assert 0.75 < scores["oracle"]["coverage_90"] <= 0.97
