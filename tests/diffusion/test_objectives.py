"""Training objectives: the exact score of a Gaussian minimises each, masks are exact, FD-SSM → SSM,
a learned schedule trains and stays valid, antithetic times cut variance, Min-SNR-γ weights by
its closed form.

Monte-Carlo comparisons use common random numbers (same generator seed for both arms) and
independent replicates; "significant" means the mean over replicates is beyond 4 standard errors.
"""

from __future__ import annotations

import math
from typing import cast

import pytest
import torch
from torch import Tensor, nn

from csdi.diffusion.conditioning import Conditioning, NoisePredictor
from csdi.diffusion.gaussian import GaussianOracle
from csdi.diffusion.losses import (
    LOGNORMAL_LOGSNR,
    MIN_SNR_GAMMA,
    OBJECTIVES,
    Weighting,
    dsm_loss,
    fd_ssm_loss,
    gamma_uniform_time,
    get_objective,
    ssm_loss,
)
from csdi.diffusion.schedule import LearnedSchedule, NoiseSchedule, get_schedule

K, L = 2, 4
D = K * L
COND_IDX = [0, 3, 6]
B = 64
DT = torch.float64


class Problem:
    """x ~ N(μ, Σ) windows with 3 cond entries; targets are the other 5 (the oracle's setting)."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(D, D, generator=g, dtype=DT)
        cov = a @ a.T / D + 0.3 * torch.eye(D, dtype=DT)
        mean = 0.5 * torch.randn(D, generator=g, dtype=DT)
        x = mean + torch.randn(B, D, generator=g, dtype=DT) @ torch.linalg.cholesky(cov).T
        self.x = x.reshape(B, K, L)
        cm = torch.zeros(D, dtype=DT)
        cm[COND_IDX] = 1.0
        mask = cm.reshape(1, K, L).expand(B, K, L)
        self.cond = Conditioning(x=self.x, mask=mask)
        self.target = 1.0 - mask
        self.schedule = schedule
        self.oracle = GaussianOracle(mean, cov, (K, L), schedule)

    def loss(self, name: str, model: NoisePredictor, seed: int) -> Tensor:
        objective = get_objective(name)
        return objective(
            model,
            self.x,
            self.cond,
            self.target,
            self.schedule,
            generator=torch.Generator().manual_seed(seed),
        )


def _mean_se(a: Tensor) -> tuple[float, float]:
    a = a.detach()
    return float(a.mean()), float(a.std() / math.sqrt(a.numel()))


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem(get_schedule("cosine").to(DT))


def test_registry_and_unknown_names() -> None:
    names = {"dsm_simple", "dsm_elbo", "dsm_min_snr", "dsm_lognormal", "ssm", "fd_ssm"}
    assert set(OBJECTIVES) == names
    with pytest.raises(ValueError, match=r"nope.*dsm_elbo.*dsm_lognormal.*dsm_min_snr.*fd_ssm"):
        get_objective("nope")


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
@pytest.mark.parametrize("perturbation", ["scale", "bias"])
def test_exact_score_minimises(problem: Problem, name: str, perturbation: str) -> None:
    exact = problem.oracle.eps

    def perturbed(z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        e = exact(z_t, t, cond)
        return 1.8 * e if perturbation == "scale" else e + 0.3

    # expected excess > 0: scale 1 + δ adds δ²E‖ε̂‖² (dsm) or ½δ²E‖ε̂‖² (ssm) with δ = 0.8, bias
    # c = 0.3 adds c² (dsm) or ½c² (ssm) per target entry; the O(δ) cross terms are the MC noise
    # (measured mean/s.e. ≥ 6.7 over 12 seeds)
    diffs = torch.stack(
        [
            problem.loss(name, perturbed, seed) - problem.loss(name, exact, seed)
            for seed in range(12)
        ]
    )
    mean, se = _mean_se(diffs)
    assert mean > 4 * se, (mean, se)


@pytest.mark.parametrize("model_kind", ["exact", "perturbed"])
def test_ssm_equals_dsm_up_to_a_constant(problem: Problem, model_kind: str) -> None:
    # Stein's identity: E[2·ssm + 1] = E[dsm_simple] for any model, not only the minimiser
    def model(z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        e = problem.oracle.eps(z_t, t, cond)
        return e if model_kind == "exact" else 0.7 * e + 0.3 * torch.tanh(z_t)

    n = 24
    dsm = torch.stack([problem.loss("dsm_simple", model, s) for s in range(n)])
    ssm = torch.stack([problem.loss("ssm", model, 1000 + s) for s in range(n)])
    dsm, ssm = dsm.detach(), ssm.detach()
    diff = dsm.mean() - (2 * ssm.mean() + 1)
    se = math.sqrt(float(dsm.var() / n + 4 * ssm.var() / n))
    assert abs(float(diff)) < 4 * se, (float(diff), se)


def test_fd_ssm_tends_to_ssm(problem: Problem) -> None:
    # a nonlinear model so that the central difference is not exact; same seed = same t, z, v
    def model(z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        return problem.oracle.eps(z_t, t, cond) + 0.5 * torch.tanh(2.0 * z_t) * t[:, None, None]

    args = (model, problem.x, problem.cond, problem.target, problem.schedule)
    ref = ssm_loss(*args, generator=torch.Generator().manual_seed(3)).detach()
    errors = [
        float((fd_ssm_loss(*args, generator=torch.Generator().manual_seed(3), delta=d) - ref).abs())
        for d in (1e-1, 1e-2, 1e-3)
    ]
    # O(δ²): each tenfold cut of δ cuts the error ~100×; ask for 30× (rounding stays ≪ 1e-9)
    assert errors[0] > 30 * errors[1] > 900 * errors[2], errors
    assert errors[2] < 1e-5


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_masks_exclude_non_target_entries_exactly(name: str) -> None:
    schedule = get_schedule("vp_linear").to(DT)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(B, K, L, generator=g, dtype=DT)
    target = torch.rand(1, K, L, generator=g) < 0.5  # fixed pattern, incl. non-cond non-targets
    target = target.expand(B, K, L)
    cond = Conditioning(x=x0, mask=torch.zeros(B, K, L, dtype=DT))
    weight = torch.randn(D, D, generator=g, dtype=DT) / D

    def model(z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        # reads only target entries of z; a nonlinear map so the SSM Jacobian is not constant
        zt = torch.where(target[:1], z_t, 0.0).reshape(z_t.shape[0], D)
        return torch.tanh(zt @ weight + t[:, None]).reshape(z_t.shape)

    def garbage_model(z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        return torch.where(target[:1], model(z_t, t, cond), torch.nan)

    x0_changed = torch.where(target, x0, 1e6)
    objective = get_objective(name)
    losses = [
        objective(m, x, cond, target.to(DT), schedule, generator=torch.Generator().manual_seed(9))
        for m, x in ((model, x0), (garbage_model, x0), (model, x0_changed))
    ]
    assert bool(torch.isfinite(losses[0].detach()))
    assert float(losses[0].detach()) == float(losses[1].detach()) == float(losses[2].detach())


def _standard_normal_windows() -> tuple[
    Tensor, Conditioning, Tensor, NoiseSchedule, NoisePredictor
]:
    """x ~ N(0, I) windows (16, 8, 32), all entries targets, nothing given, the cosine schedule
    and the exact noise predictor of that data, ε̂ = σ_t z_t."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(16, 8, 32, generator=g, dtype=DT)
    cond = Conditioning(x=x0, mask=torch.zeros_like(x0))
    schedule = get_schedule("cosine").to(DT)

    def exact(z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        return torch.sigmoid(schedule.gamma(t)).sqrt()[:, None, None] * z_t

    return x0, cond, torch.ones_like(x0), schedule, exact


def test_antithetic_times_lower_variance() -> None:
    # x ~ N(0, I) has the exact ε̂ = σ_t z and E‖ε − ε̂‖² = α_t² per entry: strongly t-dependent,
    # and with 256 entries per window the ε noise is small, so stratifying t matters
    x0, cond, target, schedule, exact = _standard_normal_windows()

    weightings: tuple[Weighting, ...] = ("simple", "elbo")
    for weighting in weightings:
        iid, anti = (
            torch.stack(
                [
                    dsm_loss(
                        exact,
                        x0,
                        cond,
                        target,
                        schedule,
                        weighting=weighting,
                        antithetic=antithetic,
                        generator=torch.Generator().manual_seed(s),
                    )
                    for s in range(200)
                ]
            )
            for antithetic in (False, True)
        )
        # both unbiased for the same value (4 s.e.) …
        diff = float(iid.mean() - anti.mean())
        assert abs(diff) < 4 * math.sqrt(float(iid.var() + anti.var()) / 200), weighting
        # … measured variance ratio ≈ 0.05; the log-ratio's s.e. is √(4/199) ≈ 0.14, so the
        # 0.25 threshold is ≥ 10 s.e. from a ratio of 1 and ≥ 11 s.e. from the measured one
        assert float(anti.var()) < 0.25 * float(iid.var()), weighting


def test_min_snr_and_lognormal_weightings_have_their_closed_form_expectations() -> None:
    # x ~ N(0, I) with the exact ε̂ = σ_t z: E‖ε − ε̂‖² = α_t² per entry, so the Min-SNR-γ loss
    # per target entry has expectation ∫₀¹ min(1, 5·e^γ(t)) α_t² dt (Hang et al. 2023), the
    # simple loss ∫₀¹ α_t² dt, and the log-normal one E[sigmoid(λ)] over its clamped
    # λ ~ N(μ, s²); each differs from the simple one by far more than the Monte Carlo error
    x0, cond, target, schedule, exact = _standard_normal_windows()

    t = (torch.arange(200_000, dtype=DT) + 0.5) / 200_000  # midpoint rule, in t and in u
    gamma = schedule.gamma(t)
    alpha2 = torch.sigmoid(-gamma)
    mu, s = LOGNORMAL_LOGSNR
    lam = (mu + s * torch.special.ndtri(t)).clamp(-schedule.gamma_max, -schedule.gamma_min)
    expected = {
        "min_snr": float((torch.clamp(MIN_SNR_GAMMA * torch.exp(gamma), max=1.0) * alpha2).mean()),
        "lognormal": float(torch.sigmoid(lam).mean()),
        "simple": float(alpha2.mean()),
    }
    n = 200
    for weighting, value in expected.items():
        losses = torch.stack(
            [
                dsm_loss(
                    exact,
                    x0,
                    cond,
                    target,
                    schedule,
                    weighting=cast(Weighting, weighting),
                    antithetic=True,
                    generator=torch.Generator().manual_seed(s),
                )
                for s in range(n)
            ]
        )
        mean, se = _mean_se(losses)
        assert abs(mean - value) < 4 * se, (weighting, mean, value, se)
        if weighting != "simple":
            assert abs(value - expected["simple"]) > 20 * se, weighting


class ToyEps(nn.Module):
    """A tiny time-dependent noise predictor on (K, L) windows."""

    def __init__(self, generator: torch.Generator, dtype: torch.dtype) -> None:
        super().__init__()
        self.lin = nn.Linear(D + 1, D).to(dtype)
        with torch.no_grad():
            self.lin.weight.copy_(0.3 * torch.randn(D, D + 1, generator=generator, dtype=dtype))
            self.lin.bias.copy_(0.1 * torch.randn(D, generator=generator, dtype=dtype))

    def forward(self, z: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        h = torch.cat([z.reshape(z.shape[0], D), t[:, None]], dim=1)  # (N, D + 1)
        return torch.tanh(self.lin(h)).reshape(z.shape)


def test_gamma_uniform_time_has_the_implicit_gradient() -> None:
    # d loss/dθ of the γ-uniform estimator vs central finite differences at fixed draws
    g = torch.Generator().manual_seed(4)
    schedule = LearnedSchedule(hidden=8).to(DT)
    with torch.no_grad():  # initialised from the test's generator, not the global one
        for net in (schedule.l1, schedule.l2, schedule.l3):
            net.weight.copy_(torch.randn(net.weight.shape, generator=g, dtype=DT))
            net.bias.copy_(torch.randn(net.bias.shape, generator=g, dtype=DT))
    model = ToyEps(g, DT)
    x0 = torch.randn(16, K, L, generator=g, dtype=DT)
    cond = Conditioning(x=x0, mask=torch.zeros_like(x0))
    target = torch.ones_like(x0)

    def loss() -> Tensor:
        gen = torch.Generator().manual_seed(5)
        return dsm_loss(model, x0, cond, target, schedule, weighting="elbo", generator=gen)

    for param in (schedule.l2.bias, schedule.l3.weight, schedule.gamma_1):
        (grad,) = torch.autograd.grad(loss(), param)
        flat = param.data.view(-1)
        for i in range(min(3, flat.numel())):
            h = 1e-6
            flat[i] += h
            up = float(loss().detach())
            flat[i] -= 2 * h
            down = float(loss().detach())
            flat[i] += h
            fd = (up - down) / (2 * h)
            assert fd == pytest.approx(float(grad.reshape(-1)[i]), rel=1e-5, abs=1e-8)
    # the interior of the schedule does get a gradient through the network's time input
    (grad,) = torch.autograd.grad(loss(), schedule.l2.bias)
    assert float(grad.abs().max()) > 1e-6


def test_gamma_uniform_time_inverts_gamma() -> None:
    schedule = get_schedule("cosine").to(DT)
    u = torch.rand(100, generator=torch.Generator().manual_seed(0), dtype=DT)
    ts = gamma_uniform_time(u, schedule)
    torch.testing.assert_close(schedule.gamma(ts.t), ts.gamma, rtol=0.0, atol=1e-10)
    torch.testing.assert_close(
        ts.weight, torch.full_like(u, 0.5 * (10.0 + 13.3)), atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("gamma_uniform", [True, False])
def test_learned_schedule_trains_and_stays_monotone(gamma_uniform: bool) -> None:
    g = torch.Generator().manual_seed(2)
    schedule = LearnedSchedule(hidden=16)
    with torch.no_grad():  # initialised from the test's generator, not the global one
        for net in (schedule.l1, schedule.l2, schedule.l3):
            net.weight.copy_(torch.randn(net.weight.shape, generator=g))
            net.bias.copy_(torch.randn(net.bias.shape, generator=g))
    model = ToyEps(g, torch.float32)
    x0 = torch.randn(64, K, L, generator=g)
    cond = Conditioning(x=x0, mask=torch.zeros_like(x0))
    target = torch.ones_like(x0)
    # l3.bias shifts γ̃ by a constant, which the endpoint normalisation removes: no gradient
    trained = {n: p for n, p in schedule.named_parameters() if n != "l3.bias"}
    before = {n: p.detach().clone() for n, p in trained.items()}
    opt = torch.optim.Adam([*model.parameters(), *trained.values()], lr=1e-2)
    for step in range(15):
        opt.zero_grad()
        loss = dsm_loss(
            model,
            x0,
            cond,
            target,
            schedule,
            weighting="elbo",
            gamma_uniform=gamma_uniform,
            antithetic=True,
            generator=torch.Generator().manual_seed(step),
        )
        loss.backward()
        for p in trained.values():
            assert p.grad is not None and bool(torch.isfinite(p.grad).all())
        opt.step()
    unchanged = [n for n, p in trained.items() if torch.equal(before[n], p.detach())]
    assert not unchanged, unchanged
    with torch.no_grad():
        grid = torch.linspace(0.0, 1.0, 2001)
        gamma = schedule.gamma(grid)
        assert bool((gamma.diff() > 0).all())
        assert float(gamma[0]) == pytest.approx(float(schedule.gamma_0), abs=1e-5)
        assert float(gamma[-1]) == pytest.approx(float(schedule.gamma_1), abs=1e-5)


def _identity(z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    return z_t


def test_bad_arguments_raise() -> None:
    schedule = get_schedule("cosine")
    x0 = torch.zeros(2, K, L)
    cond = Conditioning(x=x0, mask=torch.zeros_like(x0))
    gen = torch.Generator()
    with pytest.raises(ValueError, match="weighting"):
        dsm_loss(_identity, x0, cond, x0, schedule, generator=gen, weighting="bad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target_mask"):
        dsm_loss(_identity, x0, cond, x0[:, :1], schedule, generator=gen)
    with pytest.raises(ValueError, match="projection"):
        ssm_loss(_identity, x0, cond, x0, schedule, generator=gen, projection="bad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta"):
        fd_ssm_loss(_identity, x0, cond, x0, schedule, generator=gen, delta=0.0)


def test_fd_ssm_step_is_relative_to_the_noise_level(problem: Problem) -> None:
    """A model whose output varies on the scale σ_t (as the true score of p(z_t) does near the
    data): the default δ stays a small fraction of σ_t at every t, so FD-SSM ≈ SSM there too."""
    schedule = problem.schedule

    def model(z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        sigma = schedule.alpha_sigma(t)[1][:, None, None]
        return torch.tanh(z_t / sigma)

    args = (model, problem.x, problem.cond, problem.target, schedule)
    for seed in range(4):  # t uniform: some windows near σ_t ≈ 1e-3 in every batch
        ref = ssm_loss(*args, generator=torch.Generator().manual_seed(seed)).detach()
        fd = fd_ssm_loss(*args, generator=torch.Generator().manual_seed(seed)).detach()
        assert abs(float(fd - ref)) < 1e-3 * abs(float(ref)), (float(fd), float(ref))
