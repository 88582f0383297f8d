"""The ELBO against a Gaussian whose conditional likelihood and noise prediction are exact.

x ~ N(μ, Σ) on (K, L) = (2, 4) windows, Σ non-diagonal, 3 of the 8 entries given as `cond`,
the other 5 the targets. With the exact ε̂ (GaussianOracle) every term of VDM's ELBO has a closed
form for a fixed x: writing C = UΛUᵀ for the conditional covariance, r = Uᵀ(x_T − m), w = e^γ,
    E_ε‖ε − ε̂‖² = Σᵢ (λᵢ² + rᵢ² w)/(λᵢ + w)²                    (integrand per unit γ),
    ∫ … dγ      = Σᵢ [γ − log(λᵢ + w) + (λᵢ − rᵢ²)/(λᵢ + w)]       (antiderivative),
and averaging rᵢ² → λᵢ gives the expected ELBO over x_T | x_C in closed form, hence the exact gap
to the conditional entropy. Monte-Carlo checks use 4 standard errors, estimated from the spread of
independent per-window estimates (a two-sided 4σ band fails with probability ≈ 6e-5).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.elbo import ElboTerms, elbo, elbo_divergence
from csdi.diffusion.gaussian import GaussianOracle
from csdi.diffusion.losses import dsm_loss
from csdi.diffusion.schedule import CosineSchedule, LearnedSchedule, NoiseSchedule, get_schedule

K, L = 2, 4
D = K * L
COND_IDX = [0, 3, 6]
TARGET_IDX = [i for i in range(D) if i not in COND_IDX]
N_T = len(TARGET_IDX)
B = 64
DT = torch.float64


def _schedule(name: str) -> NoiseSchedule:
    # the learned schedule's hidden width only changes speed here, not what is tested
    kwargs = {"hidden": 64} if name == "learned" else {}
    return get_schedule(name, **kwargs).to(DT)


SCHEDULES = ["csdi_quad", "vp_linear", "cosine", "learned"]


class Problem:
    """A fixed Gaussian, a batch of windows drawn from it, and the cond/target split."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(D, D, generator=g, dtype=DT)
        self.cov = a @ a.T / D + 0.3 * torch.eye(D, dtype=DT)
        self.mean = 0.5 * torch.randn(D, generator=g, dtype=DT)
        noise = torch.randn(B, D, generator=g, dtype=DT)
        x = self.mean + noise @ torch.linalg.cholesky(self.cov).T  # (B, D)
        self.x = x.reshape(B, K, L)
        cm = torch.zeros(D, dtype=DT)
        cm[COND_IDX] = 1.0
        cond_mask = cm.reshape(1, K, L).expand(B, K, L)
        self.cond = Conditioning(x=self.x, mask=cond_mask)
        self.target = 1.0 - cond_mask

    def oracle(self, schedule: NoiseSchedule) -> GaussianOracle:
        return GaussianOracle(self.mean, self.cov, (K, L), schedule)

    def nll(self, schedule: NoiseSchedule) -> Tensor:
        """Exact −log p(x_T | x_C) per target value, (B,)."""
        return -self.oracle(schedule).log_prob_target(self.x, self.cond) / N_T

    def closed_form(self, g0: float, g1: float) -> tuple[Tensor, Tensor, Tensor]:
        """Exact (diffusion (B,), prior (B,), reconstruction) of VDM's ELBO at the exact score."""
        m, c = self.oracle(get_schedule("cosine")).conditional(self.cond)
        m = m[:, TARGET_IDX]
        lam, u = torch.linalg.eigh(c[0][TARGET_IDX][:, TARGET_IDX])  # same C for every window
        r2 = ((self.x.reshape(B, D)[:, TARGET_IDX] - m) @ u) ** 2  # (B, n)
        diffusion = 0.5 * (_antiderivative(g1, lam, r2) - _antiderivative(g0, lam, r2)) / N_T
        a1_2, s1_2 = _sigmoid(-g1), _sigmoid(g1)
        x_t = self.x.reshape(B, D)[:, TARGET_IDX]
        prior = 0.5 * (s1_2 + a1_2 * x_t**2 - 1.0 - math.log(s1_2)).sum(1) / N_T
        reconstruction = torch.full((B,), 0.5 * (math.log(2 * math.pi) + g0 + 1.0), dtype=DT)
        return diffusion, prior, reconstruction

    def expected_gap(self, g0: float, g1: float) -> float:
        """E_{x_T|x_C}[negative ELBO − (−log p(x_T|x_C))] per target value, averaged over x_C."""
        m, c = self.oracle(get_schedule("cosine")).conditional(self.cond)
        m = m[:, TARGET_IDX]
        c_t = c[0][TARGET_IDX][:, TARGET_IDX]
        lam = torch.linalg.eigvalsh(c_t)
        diffusion = 0.5 * (_antiderivative(g1, lam, lam) - _antiderivative(g0, lam, lam)) / N_T
        a1_2, s1_2 = _sigmoid(-g1), _sigmoid(g1)
        ex2 = m**2 + torch.diagonal(c_t)
        prior = 0.5 * (s1_2 + a1_2 * ex2 - 1.0 - math.log(s1_2)).sum(1) / N_T
        reconstruction = 0.5 * (math.log(2 * math.pi) + g0 + 1.0)
        entropy = 0.5 * (N_T * math.log(2 * math.pi) + torch.logdet(c_t) + N_T) / N_T
        return float((diffusion + prior + reconstruction - entropy).mean())


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _antiderivative(gamma: float, lam: Tensor, r2: Tensor) -> Tensor:
    """Σᵢ [γ − log(λᵢ + e^γ) + (λᵢ − rᵢ²)/(λᵢ + e^γ)]; d/dγ is E_ε‖ε − ε̂‖² at the exact score."""
    w = math.exp(gamma)
    return (gamma - torch.log(lam + w) + (lam - r2) / (lam + w)).sum(-1)


def _endpoints(schedule: NoiseSchedule) -> tuple[float, float]:
    with torch.no_grad():
        ends = schedule.gamma(torch.tensor([0.0, 1.0], dtype=DT))
    return float(ends[0]), float(ends[1])


def _mean_se(a: Tensor) -> tuple[float, float]:
    a = a.detach()
    return float(a.mean()), float(a.std() / math.sqrt(a.numel()))


def _elbo(problem: Problem, schedule: NoiseSchedule, seed: int, s: int = 256) -> ElboTerms:
    return elbo(
        problem.oracle(schedule).eps,
        problem.x,
        problem.cond,
        problem.target,
        schedule,
        n_time_samples=s,
        generator=torch.Generator().manual_seed(seed),
    )


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem()


def test_closed_form_antiderivative_matches_quadrature(problem: Problem) -> None:
    # guards the test's own oracle: d/dγ of the antiderivative vs the integrand at the exact score
    lam = torch.tensor([0.2, 1.5], dtype=DT)
    r2 = torch.tensor([0.7, 0.1], dtype=DT)
    for gamma in (-6.0, 0.3, 4.0):
        w = math.exp(gamma)
        integrand = ((lam**2 + r2 * w) / (lam + w) ** 2).sum()
        h = 1e-5
        fd = (_antiderivative(gamma + h, lam, r2) - _antiderivative(gamma - h, lam, r2)) / (2 * h)
        assert float(fd) == pytest.approx(float(integrand), rel=1e-8)


@pytest.mark.parametrize("name", SCHEDULES)
def test_terms_match_closed_forms(problem: Problem, name: str) -> None:
    schedule = _schedule(name)
    g0, g1 = _endpoints(schedule)
    diffusion, prior, reconstruction = problem.closed_form(g0, g1)
    terms = _elbo(problem, schedule, seed=1)
    # prior and reconstruction are computed in closed form: exact to rounding
    torch.testing.assert_close(terms.prior, prior, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(terms.reconstruction, reconstruction, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(terms.total, terms.diffusion + terms.prior + terms.reconstruction)
    # diffusion: unbiased per window; windows are independent, so 4 standard errors of the mean
    mean, se = _mean_se(terms.diffusion - diffusion)
    assert abs(mean) < 4 * se, (mean, se)
    assert se < 0.05  # the estimator is precise enough for the checks below to mean something


@pytest.mark.parametrize("name", SCHEDULES)
def test_negative_elbo_bounds_exact_nll(problem: Problem, name: str) -> None:
    schedule = _schedule(name)
    g0, g1 = _endpoints(schedule)
    gap = problem.expected_gap(g0, g1)
    # exact (closed-form) expected gap: a bound, and a tight one for every shipped schedule
    assert 0.0 < gap < 5e-3, gap
    # the Monte-Carlo estimate is above the exact NLL within MC error, and within the gap + MC
    mean, se = _mean_se(_elbo(problem, schedule, seed=2).total - problem.nll(schedule))
    assert mean > -4 * se, (mean, se)
    assert mean < gap + 4 * se, (mean, se)


def test_gap_shrinks_as_endpoints_widen(problem: Problem) -> None:
    ranges = [(-2.0, 2.0), (-5.0, 5.0), (-9.0, 7.0), (-13.3, 10.0)]
    gaps = [problem.expected_gap(g0, g1) for g0, g1 in ranges]
    assert all(a > b > 0 for a, b in itertools.pairwise(gaps)), gaps
    # each endpoint alone: σ₀ → 0 with γ₁ fixed, σ₁ → 1 with γ₀ fixed
    by_g0 = [problem.expected_gap(g0, 10.0) for g0 in (-3.0, -6.0, -12.0)]
    by_g1 = [problem.expected_gap(-13.3, g1) for g1 in (1.0, 4.0, 9.0)]
    assert by_g0[0] > by_g0[1] > by_g0[2] > 0, by_g0
    assert by_g1[0] > by_g1[1] > by_g1[2] > 0, by_g1
    # the estimator sees the narrow schedule's gap (0.14 nats), well beyond its MC error (4 s.e.)
    narrow = CosineSchedule(-2.0, 2.0).to(DT)
    mean, se = _mean_se(_elbo(problem, narrow, seed=3).total - problem.nll(narrow))
    assert mean > 4 * se, (mean, se)
    assert abs(mean - gaps[0]) < 4 * se, (mean, gaps[0], se)


@pytest.mark.parametrize("name", ["csdi_quad", "learned"])
def test_divergence_form_agrees_with_dsm_form(problem: Problem, name: str) -> None:
    # Huang et al. 2021: equal in expectation for the same x; same seed = common random numbers
    schedule = _schedule(name)
    oracle = problem.oracle(schedule)
    args = (oracle.eps, problem.x, problem.cond, problem.target, schedule)
    dsm = elbo(*args, n_time_samples=128, generator=torch.Generator().manual_seed(5))
    div = elbo_divergence(
        *args, n_time_samples=128, generator=torch.Generator().manual_seed(5), n_hutchinson=2
    )
    torch.testing.assert_close(div.reconstruction, dsm.reconstruction)
    mean, se = _mean_se(div.total - dsm.total)
    assert abs(mean) < 4 * se, (mean, se)
    # and against the closed form, independently of the DSM estimate
    g0, g1 = _endpoints(schedule)
    diffusion, prior, reconstruction = problem.closed_form(g0, g1)
    exact = diffusion + prior + reconstruction
    mean, se = _mean_se(div.total - exact)
    assert abs(mean) < 4 * se, (mean, se)
    assert se < 0.1


def test_dsm_elbo_loss_is_the_diffusion_term(problem: Problem) -> None:
    schedule = _schedule("cosine")
    oracle = problem.oracle(schedule)
    args = (oracle.eps, problem.x, problem.cond, problem.target, schedule)
    # one time draw per window: the same random stream, so the same number
    loss = dsm_loss(*args, weighting="elbo", generator=torch.Generator().manual_seed(6))
    terms = elbo(*args, n_time_samples=1, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(loss, terms.diffusion.mean(), rtol=1e-12, atol=0.0)
    # in expectation, for both time samplers (γ-uniform and t ~ U with weight ½γ'(t)); csdi_quad
    # has a bounded γ' so the t ~ U estimator has finite variance. 32 replicates, 4 s.e.
    quad = _schedule("csdi_quad")
    g0, g1 = _endpoints(quad)
    exact = float(problem.closed_form(g0, g1)[0].mean())
    big_x = problem.x.repeat_interleave(4, 0)  # (4B, K, L)
    big_cond = problem.cond.repeat(4)
    big_target = problem.target.repeat_interleave(4, 0)
    big_oracle = problem.oracle(quad)
    for gamma_uniform in (True, False):
        losses = torch.stack(
            [
                dsm_loss(
                    big_oracle.eps,
                    big_x,
                    big_cond,
                    big_target,
                    quad,
                    weighting="elbo",
                    gamma_uniform=gamma_uniform,
                    antithetic=True,
                    generator=torch.Generator().manual_seed(100 + i),
                )
                for i in range(32)
            ]
        )
        mean, se = _mean_se(losses)
        assert abs(mean - exact) < 4 * se, (gamma_uniform, mean, exact, se)


def test_elbo_is_differentiable_in_a_learned_schedule(problem: Problem) -> None:
    schedule = LearnedSchedule(hidden=64).to(DT)
    terms = _elbo(problem, schedule, seed=7, s=8)
    terms.total.mean().backward()
    grads = [p.grad for p in schedule.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert schedule.gamma_0.grad is not None and float(schedule.gamma_0.grad.abs()) > 0


def test_rejects_bad_arguments(problem: Problem) -> None:
    schedule = _schedule("cosine")
    oracle = problem.oracle(schedule)
    with pytest.raises(ValueError, match="n_time_samples"):
        elbo(
            oracle.eps,
            problem.x,
            problem.cond,
            problem.target,
            schedule,
            n_time_samples=0,
            generator=torch.Generator(),
        )
    with pytest.raises(ValueError, match="target_mask"):
        elbo_divergence(
            oracle.eps,
            problem.x,
            problem.cond,
            problem.target[:, :1],
            schedule,
            n_time_samples=2,
            generator=torch.Generator(),
        )
