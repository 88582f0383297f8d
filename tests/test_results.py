"""Results records: appended, never lost; an unreadable file is left untouched."""

from __future__ import annotations

import json

import pytest

from csdi.results import (
    ResultsError,
    append_record,
    invocation,
    make_record,
    portable,
    read_records,
)


def _record(method: str) -> dict:
    return make_record(
        dataset="synthetic",
        protocol={"missing_ratio": 0.5},
        method=method,
        metrics={"crps": 0.1},
        n_samples=10,
        sampler="ancestral",
        steps=50,
        seed=0,
        epochs=1,
        train_seconds=1.0,
        impute_seconds=2.0,
        device="cpu",
        command="csdi evaluate --model m",
    )


def test_records_accumulate(tmp_path) -> None:
    path = tmp_path / "bench" / "results.json"
    append_record(path, _record("a"))
    append_record(path, _record("b"))
    records = read_records(path)
    assert [r["method"] for r in records] == ["a", "b"]
    required = {
        "dataset",
        "protocol",
        "method",
        "metrics",
        "n_samples",
        "sampler",
        "steps",
        "seed",
        "epochs",
        "train_seconds",
        "impute_seconds",
        "device",
        "command",
        "commit",
        "date",
    }
    assert required <= set(records[0])


def test_unreadable_file_is_not_overwritten(tmp_path) -> None:
    path = tmp_path / "results.json"
    path.write_text("[{broken")
    with pytest.raises(ResultsError, match="not valid JSON"):
        append_record(path, _record("a"))
    assert path.read_text() == "[{broken"
    path.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ResultsError, match="expected a JSON list"):
        append_record(path, _record("a"))


def test_recorded_command_holds_no_absolute_path(tmp_path, monkeypatch) -> None:
    """Records and reports name files relative to where the command ran, never by a machine's
    absolute folders (absolute paths inside and outside the working directory, `--opt=/path`)."""
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = ["evaluate", "--model", str(work / "runs" / "m"), f"--reports={tmp_path / 'r'}"]
    argv += ["--samples", "10", "plain/relative.csv", "--set", f"data.path={work / 'd.csv'}"]
    command = invocation(argv)
    assert command == (
        "csdi evaluate --model runs/m --reports=../r --samples 10 plain/relative.csv "
        "--set data.path=d.csv"
    )
    assert str(tmp_path) not in command
    assert portable(work / "a.csv") == "a.csv"
    assert portable("b.csv") == "b.csv"
