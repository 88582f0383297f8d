"""The files a user would bring, made from held-out data: train.csv, test.csv, truth.npz.

Each set is a series split in time: `train.csv` (an earlier period, with its own gaps) and
`test.csv` (the later period with extra values hidden: random entries plus long blocks in some
columns). `truth.npz` holds the test period's full values (T, K), the `hidden` mask of what the
imputer must produce, the training file's per-column std (metrics are in these units), and for
the Gaussian sets the exact conditional mean and covariance of the hidden entries given every
visible test entry (the oracle: the best any imputer can do).

Gaussian sets (exact oracle):
- gp_smooth: 5 features, RBF kernel (length-scale 4 steps), low-rank cross-covariance, columns
  on scales 0.1 … 1000 with offsets; 30 % of test entries hidden.
- var1: 4 cross-correlated VAR(1) series (spectral radius 0.9), 50 % hidden and a 16-step block
  in two columns.
- gp_blocks: heavy missingness, 4 features, Matérn-3/2 (length-scale 6): 40 % missing in the
  training file, 60 % hidden in the test plus 12-step blocks in every column.
Real sets (no oracle; baselines are the bar):
- pm25_stations: 6 Beijing PM2.5 stations (STMVL ground truth, natural gaps), two of them
  rescaled ×10 and ×0.1 as sensors in other units; May–Oct to train, Nov–Dec to impute, 20 %
  hidden and a 12-hour gap in two columns.
- etth1: the 7 ETTh1 columns; first 6 months to train, the next 2 months to impute, 20 %
  hidden and a 24-hour gap in two columns.
Probe sets (`build_probes`), added after every default was chosen and never used to choose one:
the check that the defaults carry to files they were not tuned on.
- exchange: 8 daily exchange rates (random-walk-like, the test period drifting beyond the
  training range); 6 000 days to train, the next 1 000 to impute, 20 % hidden and a 20-day gap
  in two columns.
- etth2_ot: one column (ETTh2's oil temperature), hourly; 6 months to train, 2 to impute, 20 %
  hidden and a 24-hour gap.
- ettm1: the 7 ETTm1 columns every 15 minutes; 8 000 rows (83 days) to train, the next 2 000 to
  impute, 20 % hidden and a 12-hour (48-row) gap in two columns.
- pm25_wide: all 36 Beijing stations, May–Oct to train, Nov–Dec to impute, 20 % hidden and a
  12-hour gap in four columns.
- gp_short: gp_smooth's process with 600 training rows instead of 4 000 (a short file; exact
  oracle), 30 % hidden.
- etth1_month: one month of ETTh1 (720 rows) to train, the next month to impute, 20 % hidden
  and a 24-hour gap in two columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.linalg import solve_discrete_lyapunov


@dataclass(frozen=True)
class OwnDataSet:
    """A series (T_train + T_test, K) with NaN gaps, the test part's hidden mask, an oracle."""

    name: str
    frame: pd.DataFrame  # the whole series, rows = time, NaN = missing in the data itself
    n_train: int
    hidden: np.ndarray  # (T_test, K) bool: observed in the data, hidden from the imputer
    mean: np.ndarray | None = None  # (D,) Gaussian sets: mean of the test part, time-major
    cov: np.ndarray | None = None  # (D, D)
    window: int = 48


def _hide(
    observed: np.ndarray,
    rng: np.random.Generator,
    ratio: float,
    block: int,
    block_columns: list[int],
) -> np.ndarray:
    """Hide a `ratio` share of the observed entries and a block of `block` rows per column."""
    hidden = observed & (rng.random(observed.shape) < ratio)
    t = observed.shape[0]
    for k in block_columns:
        start = int(rng.integers(block, t - 2 * block))
        hidden[start : start + block, k] = observed[start : start + block, k]
    return hidden


def _gaussian_series(
    name: str,
    cov: np.ndarray,
    n_train: int,
    scales: np.ndarray,
    offsets: np.ndarray,
    rng: np.random.Generator,
    *,
    train_missing: float,
    test_hidden: float,
    block: int,
    block_columns: list[int],
    window: int,
) -> OwnDataSet:
    """A stationary Gaussian series: training rows drawn independently of the test rows
    (a long gap between the periods), the test part with its exact joint law: zero-mean with
    covariance `cov` (D, D) over the test rows, time-major (D = T_test · K), then each column
    scaled and offset. The training rows are one continuous draw (`_continuous_draw`) from a
    stream spawned off `rng`; `rng` itself advances as it did when they were drawn from it, so
    the test rows and every mask are those of the earlier files."""
    k = len(scales)
    d_test = cov.shape[0]
    n_test = d_test // k
    assert cov.shape == (d_test, d_test) and n_test * k == d_test
    chol = np.linalg.cholesky(cov)
    (train_seed,) = rng.bit_generator.seed_seq.spawn(1)  # type: ignore[attr-defined]
    train = _continuous_draw(cov, k, n_train, np.random.default_rng(train_seed))
    rng.standard_normal((-(-n_train // n_test), d_test))  # the earlier training stretches' draws
    test = (chol @ rng.standard_normal(d_test)).reshape(n_test, k)
    values = np.concatenate([train, test]) * scales + offsets  # (T, K) in column units
    miss = rng.random(values.shape) < train_missing
    miss[n_train:] = False
    values[miss] = np.nan
    hidden = _hide(np.ones((n_test, k), bool), rng, test_hidden, block, block_columns)
    columns = [f"s{i}" for i in range(k)]
    frame = pd.DataFrame(values, columns=columns, index=pd.RangeIndex(len(values), name="step"))
    scale_d = np.tile(scales, n_test)  # (D,) time-major
    return OwnDataSet(
        name=name,
        frame=frame,
        n_train=n_train,
        hidden=hidden,
        mean=np.tile(offsets, n_test),
        cov=cov * np.outer(scale_d, scale_d),
        window=window,
    )


def _continuous_draw(cov: np.ndarray, k: int, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """(n_rows, K): one stretch of the stationary process whose covariance over T rows is `cov`
    (T·K, T·K), time-major. The first T rows are drawn jointly; each next T/2 rows from their
    exact conditional given the T/2 rows before (G = Σ_ho Σ_oo⁻¹, conditional covariance
    Σ_hh − G Σ_oh), which ignores only the dependence beyond T/2 rows: below 10⁻¹⁰ of the
    variance for the sets here. Earlier versions joined independent T-row stretches, and a tenth
    of the training windows straddled a jump no test window has."""
    n = cov.shape[0] // k
    half = n // 2
    rows = [np.linalg.cholesky(cov) @ rng.standard_normal(n * k)]
    s_oo, s_ho = cov[: half * k, : half * k], cov[half * k :, : half * k]
    s_hh = cov[half * k :, half * k :]
    gain = np.linalg.solve(s_oo, s_ho.T).T  # Σ_ho Σ_oo⁻¹ (Σ_oo symmetric)
    cond = s_hh - gain @ s_ho.T
    chol = np.linalg.cholesky((cond + cond.T) / 2 + 1e-12 * np.eye(len(cond)))
    total = n
    while total < n_rows:
        last = rows[-1][-half * k :]
        rows.append(gain @ last + chol @ rng.standard_normal((n - half) * k))
        total += n - half
    return np.concatenate(rows).reshape(-1, k)[:n_rows]


def _rbf(n: int, lengthscale: float) -> np.ndarray:
    r = np.subtract.outer(np.arange(n), np.arange(n)) / lengthscale
    return np.exp(-0.5 * r**2) + 1e-4 * np.eye(n)


def _matern32(n: int, lengthscale: float) -> np.ndarray:
    r = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) * np.sqrt(3.0) / lengthscale
    return (1.0 + r) * np.exp(-r) + 1e-4 * np.eye(n)


def _cross(k: int, rng: np.random.Generator) -> np.ndarray:
    b = rng.normal(0.0, 1.0 / np.sqrt(2), size=(k, 2))
    return b @ b.T + 0.1 * np.eye(k)


def _smooth_gp(name: str, n_train: int, rng: np.random.Generator) -> OwnDataSet:
    """The RBF process of gp_smooth (module docstring) with `n_train` training rows."""
    k, n_test = 5, 480
    cov = np.kron(_rbf(n_test, 4.0), _cross(k, rng))  # time-major: index t·K + k
    return _gaussian_series(
        name,
        cov,
        n_train,
        np.array([1.0, 10.0, 100.0, 0.1, 1000.0]),
        np.array([0.0, 50.0, 1000.0, -3.0, 20000.0]),
        rng,
        train_missing=0.1,
        test_hidden=0.3,
        block=0,
        block_columns=[],
        window=48,
    )


def gp_smooth(rng: np.random.Generator) -> OwnDataSet:
    return _smooth_gp("gp_smooth", 4000, rng)


def gp_short(rng: np.random.Generator) -> OwnDataSet:
    """gp_smooth's process (its own draw) with a short training file of 600 rows."""
    return _smooth_gp("gp_short", 600, rng)


def gp_blocks(rng: np.random.Generator) -> OwnDataSet:
    k, n_test = 4, 480
    cov = np.kron(_matern32(n_test, 6.0), _cross(k, rng))
    return _gaussian_series(
        "gp_blocks",
        cov,
        4000,
        np.array([1.0, 5.0, 0.5, 20.0]),
        np.array([10.0, 0.0, 2.0, 300.0]),
        rng,
        train_missing=0.4,
        test_hidden=0.6,
        block=12,
        block_columns=[0, 1, 2, 3],
        window=48,
    )


def var1(rng: np.random.Generator) -> OwnDataSet:
    """x_t = A x_{t−1} + e_t, e ~ N(0, Q): Cov(x_{t+h}, x_t) = A^h Σ₀ with Σ₀ = A Σ₀ Aᵀ + Q."""
    k, n_test = 4, 480
    a = rng.normal(size=(k, k))
    a *= 0.9 / np.max(np.abs(np.linalg.eigvals(a)))
    q = _cross(k, rng)
    s0 = solve_discrete_lyapunov(a, q)
    cov = np.zeros((n_test * k, n_test * k))
    block = s0
    for h in range(n_test):  # fill the h-th block diagonal with A^h Σ₀ and its transpose
        for t in range(n_test - h):
            i, j = (t + h) * k, t * k
            cov[i : i + k, j : j + k] = block
            cov[j : j + k, i : i + k] = block.T
        block = a @ block
    return _gaussian_series(
        "var1",
        cov,
        6000,
        np.array([1.0, 3.0, 30.0, 0.3]),
        np.array([0.0, 10.0, 100.0, 1.0]),
        rng,
        train_missing=0.05,
        test_hidden=0.5,
        block=16,
        block_columns=[1, 3],
        window=32,
    )


def _pm25_stations(data_dir: Path) -> pd.DataFrame:
    """Beijing's 36 stations (STMVL ground truth), hourly, May–Dec 2014, columns station_ID."""
    raw = pd.read_csv(data_dir / "pm25_stmvl" / "pm25_ground.txt.gz", index_col="datetime")
    raw.index = pd.to_datetime(raw.index)
    frame = raw.astype(float).loc["2014-05-01":"2014-12-31"]
    frame.columns = [f"station_{c}" for c in frame.columns]
    frame.index.name = "time"
    return frame


def _nov_dec_test(
    name: str, frame: pd.DataFrame, rng: np.random.Generator, block_columns: list[int]
) -> OwnDataSet:
    """May–Oct to train, Nov–Dec to impute: 20 % hidden and 12-hour gaps in `block_columns`."""
    n_train = int((frame.index < "2014-11-01").sum())
    observed = frame.iloc[n_train:].notna().to_numpy()
    hidden = _hide(observed, rng, 0.2, 12, block_columns)
    return OwnDataSet(name, frame, n_train, hidden)


def pm25_stations(data_dir: Path, rng: np.random.Generator) -> OwnDataSet:
    frame = _pm25_stations(data_dir).iloc[:, [0, 5, 10, 15, 20, 25]].copy()
    frame.iloc[:, 1] *= 10.0  # a sensor reporting in other units
    frame.iloc[:, 4] *= 0.1
    return _nov_dec_test("pm25_stations", frame, rng, [0, 3])


def _ett(
    name: str,
    data_dir: Path,
    file: str,
    n_train: int,
    n_test: int,
    rng: np.random.Generator,
    block: int,
    block_columns: list[int],
    columns: list[str] | None = None,
) -> OwnDataSet:
    """The first n_train rows of an ETT file (its `columns`, default all) to train, the next
    n_test to impute: 20 % hidden and a gap of `block` rows in `block_columns`."""
    frame = pd.read_csv(data_dir / "ett" / file, index_col="date", parse_dates=True)
    frame.index.name = "time"
    frame = (frame if columns is None else frame[columns]).iloc[: n_train + n_test].astype(float)
    hidden = _hide(np.ones((n_test, frame.shape[1]), bool), rng, 0.2, block, block_columns)
    return OwnDataSet(name, frame, n_train, hidden)


def etth1(data_dir: Path, rng: np.random.Generator) -> OwnDataSet:
    return _ett("etth1", data_dir, "ETTh1.csv.gz", 4380, 1464, rng, 24, [1, 6])


def exchange(data_dir: Path, rng: np.random.Generator) -> OwnDataSet:
    values = pd.read_csv(data_dir / "exchange_rate" / "exchange_rate.txt.gz", header=None)
    frame = values.iloc[:7000].astype(float)
    frame.columns = [f"rate_{c}" for c in frame.columns]
    frame.index = pd.date_range("1990-01-01", periods=len(frame), freq="D", name="time")
    hidden = _hide(np.ones((1000, frame.shape[1]), bool), rng, 0.2, 20, [2, 5])
    return OwnDataSet("exchange", frame, 6000, hidden)


def etth2_ot(data_dir: Path, rng: np.random.Generator) -> OwnDataSet:
    return _ett("etth2_ot", data_dir, "ETTh2.csv.gz", 4380, 1464, rng, 24, [0], ["OT"])


def ettm1(data_dir: Path, rng: np.random.Generator) -> OwnDataSet:
    return _ett("ettm1", data_dir, "ETTm1.csv.gz", 8000, 2000, rng, 48, [0, 6])


def etth1_month(data_dir: Path, rng: np.random.Generator) -> OwnDataSet:
    return _ett("etth1_month", data_dir, "ETTh1.csv.gz", 720, 720, rng, 24, [1, 6])


def pm25_wide(data_dir: Path, rng: np.random.Generator) -> OwnDataSet:
    return _nov_dec_test("pm25_wide", _pm25_stations(data_dir), rng, [0, 9, 18, 27])


def build_probes(data_dir: Path | None, seed: int = 0) -> list[OwnDataSet]:
    """The probe sets (module docstring) whose benchmark files `data_dir` holds."""
    found: list[OwnDataSet] = [gp_short(np.random.default_rng(seed + 24))]
    if data_dir is not None and (data_dir / "exchange_rate").is_dir():
        found.append(exchange(data_dir, np.random.default_rng(seed + 20)))
    if data_dir is not None and (data_dir / "ett").is_dir():
        found.append(etth2_ot(data_dir, np.random.default_rng(seed + 21)))
        found.append(ettm1(data_dir, np.random.default_rng(seed + 22)))
        found.append(etth1_month(data_dir, np.random.default_rng(seed + 25)))
    if data_dir is not None and (data_dir / "pm25_stmvl").is_dir():
        found.append(pm25_wide(data_dir, np.random.default_rng(seed + 23)))
    return found


def build_all(data_dir: Path | None, seed: int = 0) -> list[OwnDataSet]:
    """Every set (the real ones only when `data_dir` holds the benchmark files)."""
    makers: list[Callable[[np.random.Generator], OwnDataSet]] = [gp_smooth, var1, gp_blocks]
    sets = [make(np.random.default_rng(seed + i)) for i, make in enumerate(makers)]
    if data_dir is not None and (data_dir / "pm25_stmvl").is_dir():
        sets.append(pm25_stations(data_dir, np.random.default_rng(seed + 10)))
    if data_dir is not None and (data_dir / "ett").is_dir():
        sets.append(etth1(data_dir, np.random.default_rng(seed + 11)))
    return sets


def write_files(ds: OwnDataSet, folder: Path) -> None:
    """train.csv, test.csv (hidden entries blanked) and truth.npz in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    train = ds.frame.iloc[: ds.n_train]
    test = ds.frame.iloc[ds.n_train :].copy()
    truth = test.to_numpy(dtype=float)
    test = test.mask(ds.hidden)
    train.to_csv(folder / "train.csv")
    test.to_csv(folder / "test.csv")
    extra: dict[str, np.ndarray] = {}
    if ds.mean is not None and ds.cov is not None:  # the Gaussian sets' exact law
        extra = {"mean": ds.mean, "cov": ds.cov}
    np.savez_compressed(
        folder / "truth.npz",
        values=truth,
        hidden=ds.hidden,
        train_std=np.nanstd(train.to_numpy(dtype=float), axis=0),
        **extra,
    )
