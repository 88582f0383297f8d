"""Progress bars: only when asked for, on a terminal, and never under --quiet."""

from __future__ import annotations

from csdi.progress import QUIET_ENV, bar_disable


def test_bar_disable(monkeypatch) -> None:
    monkeypatch.delenv(QUIET_ENV, raising=False)
    assert bar_disable(False) is True
    assert bar_disable(True) is None  # tqdm: shown only when writing to a terminal
    monkeypatch.setenv(QUIET_ENV, "1")
    assert bar_disable(True) is True
