"""The ELBO of held-out values as `csdi evaluate` reports it, against an exact likelihood."""

from __future__ import annotations

import numpy as np
import torch

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.gaussian import GaussianOracle
from csdi.diffusion.schedule import get_schedule
from csdi.inference import elbo_windows

K, L = 2, 4


def test_pooled_bound_brackets_the_exact_likelihood_within_its_standard_error() -> None:
    """With the exact noise predictor VDM's bound is tight up to its endpoints (a gap ≪ 0.01
    nats per value on the cosine schedule's γ ∈ [−13.3, 10]), so the exact −log p(x_T | x_C) per
    value must lie within a few reported Monte-Carlo standard errors of the pooled bound (the
    windows are the same, so their spread does not enter)."""
    schedule = get_schedule("cosine").to(torch.float64)
    g = torch.Generator().manual_seed(0)
    d = K * L
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    oracle = GaussianOracle(
        torch.linspace(-1.0, 1.0, d, dtype=torch.float64),
        a @ a.T / d + 0.3 * torch.eye(d, dtype=torch.float64),
        (K, L),
        schedule,
    )
    n = 48
    x = (
        oracle.mean
        + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(oracle.cov).T
    )  # (N, D)
    x = x.reshape(n, K, L)
    cond = torch.rand(n, K, L, generator=g) < 0.4  # (N, K, L) bool
    values = x.permute(0, 2, 1).numpy()  # (N, L, K) time-major, as windows are
    cond_np = cond.permute(0, 2, 1).numpy()
    summary = elbo_windows(
        oracle.eps,
        schedule,
        values,
        cond_np,
        ~cond_np,
        np.broadcast_to(np.arange(L, dtype=np.float32), (n, L)),
        torch.device("cpu"),
        n_time_samples=32,
        seed=1,
    )
    c = Conditioning(x=x * cond, mask=cond.to(torch.float64))
    nll = -oracle.log_prob_target(x, c)  # (N,)
    exact = float(nll.sum() / (~cond).sum())
    assert summary.n_targets == int((~cond).sum())
    terms = summary.prior + summary.reconstruction + summary.diffusion
    assert abs(terms - summary.nats_per_value) < 1e-6  # float32 terms
    assert 0.0 < summary.mc_standard_error < summary.window_standard_error
    assert abs(summary.nats_per_value - exact) < 4.0 * summary.mc_standard_error + 0.01, (
        summary,
        exact,
    )


def test_monte_carlo_error_is_honest() -> None:
    """Across seeds the estimates scatter about as the reported Monte-Carlo error says."""
    schedule = get_schedule("cosine").to(torch.float64)
    g = torch.Generator().manual_seed(2)
    oracle = GaussianOracle(
        torch.zeros(K * L, dtype=torch.float64),
        torch.eye(K * L, dtype=torch.float64),
        (K, L),
        schedule,
    )
    n = 16
    values = torch.randn(n, L, K, generator=g, dtype=torch.float64).numpy()
    cond = (torch.rand(n, L, K, generator=g) < 0.5).numpy()
    stamps = np.broadcast_to(np.arange(L, dtype=np.float32), (n, L))
    runs = [
        elbo_windows(
            oracle.eps,
            schedule,
            values,
            cond,
            ~cond,
            stamps,
            torch.device("cpu"),
            n_time_samples=4,
            seed=s,
        )
        for s in range(24)
    ]
    estimates = np.array([r.nats_per_value for r in runs])
    reported = np.mean([r.mc_standard_error for r in runs])
    # the sample std of 24 draws is within ±40 % of the truth with probability > 0.99
    assert 0.6 * reported < estimates.std(ddof=1) < 1.4 * reported, (estimates.std(), reported)
