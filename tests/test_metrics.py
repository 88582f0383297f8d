"""Metrics against the reference CSDI outputs, closed forms and an independent CRPS code."""

from __future__ import annotations

import os
from pathlib import Path
from statistics import NormalDist

import numpy as np
import properscoring
import pytest
import torch

from csdi import metrics
from csdi.metrics import (
    DEFAULT_QUANTILES,
    MetricInputError,
    coverage,
    crps,
    crps_exact,
    crps_sum,
    energy_score,
    evaluate,
    fair_crps_of_sorted,
    mae,
    normalised_quantile_loss,
    rmse,
)

FIXTURES = Path(os.environ.get("CSDI_FIXTURES_DIR", Path(__file__).resolve().parent / "fixtures"))
GOLDEN = FIXTURES / "crps_golden.npz"
STD_NORMAL = NormalDist()


def normal_crps(mu: float, sigma: float, y: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of N(μ, σ²) at y: σ[z(2Φ(z) − 1) + 2φ(z) − 1/√π] (Gneiting et al. 2005)."""
    z = (y - mu) / sigma
    cdf = np.vectorize(STD_NORMAL.cdf)(z)
    pdf = np.vectorize(STD_NORMAL.pdf)(z)
    return sigma * (z * (2 * cdf - 1) + 2 * pdf - 1 / np.sqrt(np.pi))


def random_case(rng: np.random.Generator, n=3, s=8, ll=6, k=4, p_mask=0.5):
    samples = rng.normal(size=(n, s, ll, k))
    target = rng.normal(size=(n, ll, k))
    mask = rng.random((n, ll, k)) < p_mask
    mask[0, 0, 0] = True
    return samples, target, mask


# --- golden numbers from the reference implementation -----------------------------------------


@pytest.mark.skipif(
    not GOLDEN.exists(), reason=f"golden fixture not found at {GOLDEN} (set CSDI_FIXTURES_DIR)"
)
@pytest.mark.parametrize("case", ["case0", "case1", "case2"])
def test_matches_reference_csdi(case: str) -> None:
    with np.load(GOLDEN) as d:
        f = {key.removeprefix(f"{case}_"): d[key] for key in d.files if key.startswith(f"{case}_")}
    got = evaluate(
        f["samples"],
        f["target"],
        f["eval_points"],
        scaler_mean=f["mean_scaler"],
        scaler_std=f["scaler"],
    )
    # The reference computed in float32 (relative differences seen ~1e-8); 1e-6 leaves margin.
    for name in ("crps", "crps_sum", "mae", "rmse"):
        assert got[name] == pytest.approx(float(f[name]), rel=1e-6, abs=1e-9), name
    # The stand-alone functions agree with evaluate on the un-scaled arrays.
    x = f["samples"] * f["scaler"] + f["mean_scaler"]
    y = f["target"] * f["scaler"] + f["mean_scaler"]
    assert crps(x, y, f["eval_points"]) == pytest.approx(got["crps"], rel=1e-12)
    assert crps_sum(x, y, f["eval_points"]) == pytest.approx(got["crps_sum"], rel=1e-12)
    assert mae(x, y, f["eval_points"]) == pytest.approx(got["mae"], rel=1e-12)
    assert rmse(x, y, f["eval_points"]) == pytest.approx(got["rmse"], rel=1e-12)


def test_median_is_lower_middle_as_torch_median() -> None:
    samples = np.array([1.0, 2.0, 10.0, 20.0])[None, :, None, None]  # (1, 4, 1, 1)
    target = np.zeros((1, 1, 1))
    mask = np.ones((1, 1, 1), bool)
    assert torch.median(torch.from_numpy(samples), dim=1).values.item() == 2.0
    assert mae(samples, target, mask) == 2.0
    assert rmse(samples, target, mask) == 2.0


# --- closed forms ----------------------------------------------------------------------------


def test_crps_exact_matches_normal_closed_form() -> None:
    rng = np.random.default_rng(0)
    mu, sigma, m, s = 0.3, 1.7, 200, 2000
    y = mu + sigma * rng.normal(size=m) * 1.5  # targets inside and in the tails
    x = mu + sigma * rng.normal(size=(m, s))
    per_entry = fair_crps_of_sorted(np.sort(x, axis=1), y)
    diff = per_entry - normal_crps(mu, sigma, y)
    # Entries are independent and the fair estimator is unbiased: the mean difference is within
    # 5 standard errors of 0 (chance of a false failure < 1e-6).
    assert abs(diff.mean()) < 5 * diff.std(ddof=1) / np.sqrt(m)
    assert abs(diff.mean()) < 0.01 * sigma
    # Same through the public (N, S, L, K) API: m windows, one entry each.
    got = crps_exact(x[:, :, None, None], y[:, None, None], np.ones((m, 1, 1), bool))
    assert got == pytest.approx(per_entry.mean(), rel=1e-12)


def test_quantile_loss_matches_normal_quantiles() -> None:
    """With many samples, sample quantiles → N(μ, σ²) quantiles; compare to the 19-level loss."""
    rng = np.random.default_rng(1)
    mu, sigma, m, s = 2.0, 0.5, 100, 4000
    y = mu + sigma * rng.normal(size=m)
    x = mu + sigma * rng.normal(size=(m, 1, 1, s)).transpose(0, 3, 1, 2)  # (m, S, 1, 1)
    got = normalised_quantile_loss(x, y[:, None, None], np.ones((m, 1, 1), bool))
    expected = 0.0
    for q in DEFAULT_QUANTILES:
        qq = mu + sigma * STD_NORMAL.inv_cdf(q)
        expected += np.sum(2 * np.abs((qq - y) * ((y <= qq) - q))) / np.abs(y).sum()
    expected /= len(DEFAULT_QUANTILES)
    # Sample-quantile error ~ σ·sqrt(q(1−q)/S)/φ ≈ 0.02 σ at the tails for S = 4000; its effect on
    # the loss, normalised by mean|y| = 2 ≈ 4σ, stays below 1 % — tolerance 2 %.
    assert got == pytest.approx(expected, rel=0.02)


def test_crps_exact_against_properscoring() -> None:
    """properscoring's ensemble CRPS has the 1/S² (non-fair) spread term: convert, then compare."""
    rng = np.random.default_rng(2)
    samples, target, mask = random_case(rng, s=7)
    x = np.moveaxis(samples, 1, -1)[mask]  # (M, S)
    y = target[mask]
    s = x.shape[1]
    ps = properscoring.crps_ensemble(y, x)  # skill − Σ_ij|xi − xj| / (2S²)
    skill = np.abs(x - y[:, None]).mean(axis=1)
    fair = skill - s / (s - 1) * (skill - ps)
    assert crps_exact(samples, target, mask) == pytest.approx(fair.mean(), rel=1e-12)
    # and brute-force O(S²) pairs
    pairs = np.abs(x[:, :, None] - x[:, None, :]).sum(axis=(1, 2)) / (2 * s * (s - 1))
    assert fair_crps_of_sorted(np.sort(x, axis=1), y) == pytest.approx(skill - pairs, rel=1e-12)


def test_coverage_of_exact_normal_samples_is_nominal() -> None:
    rng = np.random.default_rng(3)
    m, s = 2000, 1000
    samples = rng.normal(size=(m, s, 1, 1))
    target = rng.normal(size=(m, 1, 1))
    mask = np.ones((m, 1, 1), bool)
    # Binomial s.d. over m targets: 0.011 (50 %), 0.0067 (90 %); finite S biases by O(1/S).
    assert coverage(samples, target, mask, 0.5) == pytest.approx(0.5, abs=0.045)
    assert coverage(samples, target, mask, 0.9) == pytest.approx(0.9, abs=0.03)
    out = evaluate(samples, target, mask)
    assert out["coverage_50"] == coverage(samples, target, mask, 0.5)
    assert out["coverage_90"] == coverage(samples, target, mask, 0.9)


# --- energy score ----------------------------------------------------------------------------


def test_energy_score_one_dimension_is_crps() -> None:
    rng = np.random.default_rng(4)
    samples, target, _ = random_case(rng, n=5, s=9)
    mask = np.zeros(target.shape, bool)
    mask[:, 2, 1] = True  # one entry per window: the energy score reduces to the CRPS
    assert energy_score(samples, target, mask) == pytest.approx(crps_exact(samples, target, mask))


def test_energy_score_brute_force() -> None:
    rng = np.random.default_rng(5)
    samples, target, mask = random_case(rng, n=2, s=5, ll=3, k=2)
    expected = []
    for xi, yi, mi in zip(samples, target, mask, strict=True):
        v, w = xi[:, mi], yi[mi]
        s = len(v)
        skill = np.mean([np.linalg.norm(a - w) for a in v])
        spread = sum(np.linalg.norm(a - b) for a in v for b in v) / (2 * s * (s - 1))
        expected.append(skill - spread)
    assert energy_score(samples, target, mask) == pytest.approx(np.mean(expected), rel=1e-10)
    full = np.ones_like(mask)
    assert energy_score(samples, target) == pytest.approx(energy_score(samples, target, full))


def test_nrmse_is_gluonts_definition() -> None:
    """NRMSE = √mean((mean forecast − y)²) / mean|y|, by hand on three targets."""
    samples = np.array([[1.0, 3.0], [2.0, 2.0], [-4.0, 0.0]]).reshape(3, 2, 1, 1)  # (N, S, L, K)
    target = np.array([1.0, 4.0, -1.0]).reshape(3, 1, 1)
    mask = np.ones_like(target, dtype=bool)
    # mean forecasts 2, 2, −2 → errors 1, −2, −1 → RMSE √2; mean |y| = 2
    got = evaluate(samples, target, mask)
    assert got["nrmse"] == pytest.approx(np.sqrt(2.0) / 2.0, rel=1e-12)
    one = evaluate(samples[:, :1], target, mask)
    assert "energy_score" not in one  # undefined for one sample, left out rather than NaN


# --- masking and un-scaling ------------------------------------------------------------------


def test_mask_excludes_entries() -> None:
    rng = np.random.default_rng(6)
    samples, target, mask = random_case(rng)
    ref = evaluate(samples, target, mask)
    bad_x, bad_y = samples.copy(), target.copy()
    bad_x[np.broadcast_to(~mask[:, None], samples.shape)] = np.nan
    bad_y[~mask] = 1e9
    got = evaluate(bad_x, bad_y, mask)
    for name in ("crps", "crps_exact", "mae", "rmse", "coverage_50", "coverage_90", "n_targets"):
        assert got[name] == ref[name], name
    assert got["n_targets"] == mask.sum()
    # crps_sum sums all features by definition (as the reference): it does change, stays finite.
    assert np.isfinite(got["crps_sum"])


def test_evaluate_unscales_per_feature() -> None:
    rng = np.random.default_rng(7)
    samples, target, mask = random_case(rng)
    mean, std = np.array([1.0, -2.0, 3.0, 50.0]), np.array([0.5, 2.0, 1.0, 10.0])
    got = evaluate(samples, target, mask, scaler_mean=mean, scaler_std=std)
    x, y = samples * std + mean, target * std + mean
    assert got["crps"] == pytest.approx(crps(x, y, mask), rel=1e-12)
    assert got["crps_exact"] == pytest.approx(crps_exact(x, y, mask), rel=1e-12)
    assert got["mae"] == pytest.approx(mae(x, y, mask), rel=1e-12)
    assert got["rmse"] == pytest.approx(rmse(x, y, mask), rel=1e-12)
    assert got["crps_sum"] == pytest.approx(crps_sum(x, y, mask), rel=1e-12)
    assert got["energy_score"] == pytest.approx(energy_score(x, y, mask), rel=1e-12)
    with pytest.raises(MetricInputError, match=r"scaler_std must be a scalar or of shape \(4,\)"):
        evaluate(samples, target, mask, scaler_std=np.ones(5))


def test_accepts_torch_tensors() -> None:
    rng = np.random.default_rng(8)
    samples, target, mask = random_case(rng)
    ref = evaluate(samples, target, mask)
    got = evaluate(torch.from_numpy(samples), torch.from_numpy(target), torch.from_numpy(mask))
    assert got == ref


# --- edge cases ------------------------------------------------------------------------------


def test_empty_mask_raises() -> None:
    samples, target, mask = random_case(np.random.default_rng(9))
    with pytest.raises(ValueError, match="no evaluation targets"):
        evaluate(samples, target, np.zeros_like(mask))


def test_nan_in_masked_samples_raises_with_count() -> None:
    samples, target, mask = random_case(np.random.default_rng(10))
    samples[0, :3, 0, 0] = np.nan  # mask[0, 0, 0] is True
    with pytest.raises(ValueError, match="3 non-finite"):
        evaluate(samples, target, mask)
    target[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="target has 1 non-finite"):
        crps(np.zeros_like(samples), target, mask)


@pytest.mark.parametrize(
    ("samples_shape", "mask", "match"),
    [
        ((3, 8, 6, 5), None, "samples must be"),
        ((3, 8, 6, 4), np.full((3, 6, 4), 0.5), "only 0 and 1"),
        ((3, 8, 6, 4), np.ones((3, 6), bool), "mask has shape"),
    ],
)
def test_bad_shapes_raise(samples_shape, mask, match) -> None:
    target = np.zeros((3, 6, 4))
    mask = np.ones((3, 6, 4), bool) if mask is None else mask
    with pytest.raises(MetricInputError, match=match):
        evaluate(np.zeros(samples_shape), target, mask)


def test_constant_samples() -> None:
    rng = np.random.default_rng(11)
    _, target, mask = random_case(rng)
    c = 0.25
    samples = np.full((target.shape[0], 6, *target.shape[1:]), c)
    out = evaluate(samples, target, mask)
    err = np.abs(target[mask] - c)
    assert out["crps_exact"] == pytest.approx(err.mean())  # point forecast: CRPS = |c − y|
    assert out["mae"] == pytest.approx(err.mean())
    # Every quantile is c: the 19-level loss is Σ 2ρ_q(y − c), averaged = Σ|y − c| / Σ|y|.
    assert out["crps"] == pytest.approx(err.sum() / np.abs(target[mask]).sum())
    assert out["coverage_90"] == 0.0
    hit = np.where(mask, c, target)  # targets equal to the constant are covered (closed bounds)
    assert evaluate(samples, hit, mask)["coverage_50"] == 1.0
    assert evaluate(samples, hit, mask)["crps_exact"] == 0.0


def test_single_sample_crps_exact_is_absolute_error() -> None:
    samples, target, mask = random_case(np.random.default_rng(12), s=1)
    expected = np.abs(samples[:, 0] - target)[mask].mean()
    assert crps_exact(samples, target, mask) == pytest.approx(expected)
    with pytest.raises(MetricInputError, match="at least 2"):
        energy_score(samples, target, mask)


def test_zero_targets_give_nan_normalised_loss_only() -> None:
    samples, _, mask = random_case(np.random.default_rng(13))
    out = evaluate(samples, np.zeros(mask.shape), mask)
    assert np.isnan(out["crps"])  # Σ|y| = 0: the normalised loss is undefined
    assert np.isnan(out["nrmse"])  # and so is the normalised RMSE
    for name in ("crps_exact", "mae", "rmse", "coverage_50", "coverage_90"):
        assert np.isfinite(out[name]), name


def test_coverage_level_checked() -> None:
    samples, target, mask = random_case(np.random.default_rng(14))
    with pytest.raises(MetricInputError, match="level"):
        coverage(samples, target, mask, 90)


def test_crps_alias() -> None:
    assert metrics.crps is metrics.normalised_quantile_loss
