"""Windows of a multivariate series in the user-facing, time-major layout (N, L, K).

Also cuts a long series into windows (`window_starts`) and puts per-window results back
together (`stitch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csdi.data.scaling import Scaler, fit_scaler

__all__ = ["Scaler", "WindowSet", "fit_scaler", "stitch", "window_starts"]


@dataclass(frozen=True)
class WindowSet:
    """N windows of L steps and K features.

    values:        (N, L, K) float32, 0 where not observed (never NaN).
    observed:      (N, L, K) bool, value present in the data.
    cond:          (N, L, K) bool or None, entries given to the model at evaluation (the
                   protocol's test pattern); evaluation targets are observed & ~cond.
    timestamps:    (N, L) float32 time stamps (hours for PhysioNet; steps since series start
                   for own data).
    feature_names: the K feature names.
    """

    values: np.ndarray
    observed: np.ndarray
    cond: np.ndarray | None
    timestamps: np.ndarray
    feature_names: tuple[str, ...]

    def __post_init__(self) -> None:
        shape = self.values.shape
        if len(shape) != 3:
            raise ValueError(f"values must be (N, L, K); got shape {shape}")
        if self.observed.shape != shape or (self.cond is not None and self.cond.shape != shape):
            raise ValueError(f"observed and cond must have the shape of values {shape}")
        if self.timestamps.shape != shape[:2]:
            raise ValueError(f"timestamps must be {shape[:2]}; got {self.timestamps.shape}")
        if len(self.feature_names) != shape[2]:
            raise ValueError(f"{len(self.feature_names)} feature names for {shape[2]} features")

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def targets(self) -> np.ndarray:
        """(N, L, K) bool evaluation targets, observed & ~cond (all observed if cond is None)."""
        return self.observed if self.cond is None else self.observed & ~self.cond

    def subset(self, index: np.ndarray) -> WindowSet:
        """The windows at `index` (any integer index array), in that order."""
        return WindowSet(
            values=self.values[index],
            observed=self.observed[index],
            cond=None if self.cond is None else self.cond[index],
            timestamps=self.timestamps[index],
            feature_names=self.feature_names,
        )


def window_starts(n_rows: int, window: int, stride: int) -> np.ndarray:
    """Start rows of windows of length `window` every `stride` rows that cover all n_rows rows.

    If the stride does not land on the end, one more window is aligned to the last row.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be ≥ 1; got {window} and {stride}")
    if window > n_rows:
        raise ValueError(f"window of {window} steps is longer than the series ({n_rows} rows)")
    starts = np.arange(0, n_rows - window + 1, stride)
    if starts[-1] + window < n_rows:
        starts = np.append(starts, n_rows - window)
    return starts.astype(np.int64)


def stitch(window_values: np.ndarray, starts: np.ndarray, n_rows: int) -> np.ndarray:
    """Per-window results back to one series: (N, S, L, K) or (N, L, K) → (S, T, K), T = n_rows.

    Every row is taken from a single window: of the windows that cover it, the one in which
    the row lies farthest from the window's edges (ties: the earlier window). Samples are never
    averaged across windows, which would shrink their spread; (N, L, K) input gives S = 1.
    Rows no window covers are NaN.
    """
    if window_values.ndim == 3:
        window_values = window_values[:, None]  # (N, 1, L, K)
    n, s, length, k = window_values.shape
    if len(starts) != n:
        raise ValueError(f"{len(starts)} starts for {n} windows")
    out = np.full((s, n_rows, k), np.nan, dtype=window_values.dtype)
    best = np.full(n_rows, -1, dtype=np.int64)  # distance to the nearest edge of the chosen window
    pos = np.arange(length)
    edge_dist = np.minimum(pos, length - 1 - pos)  # (L,)
    for i, start in enumerate(np.asarray(starts, np.int64)):
        rows = start + pos
        keep = (rows < n_rows) & (edge_dist > best[np.minimum(rows, n_rows - 1)])
        out[:, rows[keep]] = window_values[i][:, keep]
        best[rows[keep]] = edge_dist[keep]
    return out
