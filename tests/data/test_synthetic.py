"""Synthetic GP windows: the generated law is Σ, and oracle samples follow the exact conditional."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csdi.data.synthetic import make_synthetic, oracle_samples, temporal_kernel


def test_windows_have_the_stated_covariance_and_layout() -> None:
    n, k, length = 6000, 3, 8
    data = make_synthetic(n, k, length, missing_ratio=0.25, rng=np.random.default_rng(0))
    w = data.windows
    assert w.values.shape == (n, length, k) and w.observed.all()
    assert (~w.cond).sum(axis=(1, 2)).tolist() == [int(0.25 * k * length)] * n
    x = w.values.astype(np.float64).transpose(0, 2, 1).reshape(n, -1)  # (N, K·L), C order of (K, L)
    emp_cov = np.cov(x, rowvar=False)
    sd = np.sqrt((data.cov**2 + np.outer(np.diag(data.cov), np.diag(data.cov))) / n)
    # Wishart: sd of each entry is sqrt((Σ_ij² + Σ_ii Σ_jj)/N); 576 entries → 5 sd bound
    assert np.max(np.abs(emp_cov - data.cov) / sd) < 5.0
    assert np.max(np.abs(x.mean(0) - data.mean) / np.sqrt(np.diag(data.cov) / n)) < 5.0
    # the layout claim: Σ[(k, l), (k', l')] = C_K[k, k'] · k_L[l, l'] — same-feature lag-1
    # correlation is the temporal kernel's
    k_l = temporal_kernel(length, 3.0) + 1e-4 * np.eye(length)
    c = data.cov.reshape(k, length, k, length)
    np.testing.assert_allclose(c[1, 2, 1, 3] / c[1, 2, 1, 2], k_l[2, 3] / k_l[2, 2], rtol=1e-12)


def test_oracle_samples_follow_the_exact_conditional() -> None:
    k, length, s = 2, 6, 4000
    data = make_synthetic(3, k, length, missing_ratio=0.5, rng=np.random.default_rng(1))
    draws = oracle_samples(data, s, torch.Generator().manual_seed(0))  # (N, S, L, K)
    assert draws.shape == (3, s, length, k)
    for i in range(3):
        # independent closed form in the flattened (K, L) order: Schur complement
        x = data.windows.values[i].T.reshape(-1).astype(np.float64)  # (L, K) → (K, L) → (D,)
        c = data.windows.cond[i].T.reshape(-1)
        t = ~c
        sig = data.cov
        gain = sig[np.ix_(t, c)] @ np.linalg.inv(sig[np.ix_(c, c)])
        mean_t = data.mean[t] + gain @ (x[c] - data.mean[c])
        var_t = np.diag(sig[np.ix_(t, t)] - gain @ sig[np.ix_(c, t)])
        flat = draws[i].transpose(0, 2, 1).reshape(s, -1)  # (S, K, L) → (S, D)
        np.testing.assert_allclose(flat[:, c], np.broadcast_to(x[c], (s, c.sum())), atol=1e-6)
        # MC: sd of the sample mean is sqrt(var/S), of the sample variance ≈ var·sqrt(2/S)
        assert np.all(np.abs(flat[:, t].mean(0) - mean_t) < 5 * np.sqrt(var_t / s))
        assert np.all(np.abs(flat[:, t].var(0) - var_t) < 5 * var_t * np.sqrt(2 / s))


def test_same_seed_same_data_and_bad_ratio() -> None:
    a = make_synthetic(4, rng=np.random.default_rng(3), missing_ratio=0.3)
    b = make_synthetic(4, rng=np.random.default_rng(3), missing_ratio=0.3)
    np.testing.assert_array_equal(a.windows.values, b.windows.values)
    np.testing.assert_array_equal(a.windows.cond, b.windows.cond)
    assert a.windows.values.shape == (4, 24, 6)
    with pytest.raises(ValueError, match="missing_ratio"):
        make_synthetic(2, rng=np.random.default_rng(0), missing_ratio=1.0)
    with pytest.raises(ValueError, match="unknown temporal kernel"):
        temporal_kernel(5, 1.0, "cubic")  # type: ignore[arg-type]
