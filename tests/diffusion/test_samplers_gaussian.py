"""Gaussian oracle for every sampler × schedule, CSDI's discrete update, and sampler contracts.

x ~ N(μ, Σ) over windows K=2, L=3 (D=6, non-diagonal Σ); with the exact noise predictor the
samplers must reproduce the exact conditional x_T | x_C (GaussianOracle.conditional).

Tolerances (whitened coordinates w = C^{-1/2}(x − m), so every entry has the same scale): with S
samples, mean entries have standard error 1/√S, covariance entries √(2/S) on the diagonal and
√(1/S) off it. A check passes if |error| < 4.5 standard errors + a discretisation allowance
(DISC = 0.06; with 5·10⁴ samples per window the largest error at the step counts used here was
0.043, ancestral on vp_linear's covariance, ≈ 0.038 of it bias: ancestral steps with x̂₀ = E[x | z_t]
lose posterior variance, O(1/steps)). Per configuration about 46 entries are checked, so the
chance of a false alarm at 4.5 s.e. is ≈ 46 · 6.8e-6 ≈ 3e-4; the seeds are fixed besides.

DISC is a measured allowance. Where the sampler's own output law is computable the Monte-Carlo
check goes against that law with tolerances from the sample count alone: the deterministic
samplers here (`test_deterministic_samples_follow_their_exact_law`, an affine map of z₁) and
the ancestral chain in test_sampler_order.py; their discretisation error is pinned by the
convergence-order tests there, not by DISC.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.gaussian import GaussianOracle
from csdi.diffusion.samplers import (
    LOGSNR_T_LAST,
    SAMPLERS,
    make_time_grid,
    sample,
)
from csdi.diffusion.schedule import NoiseSchedule, get_schedule

K, L = 2, 3
D = K * L
N_SE = 4.5  # standard errors allowed (Monte-Carlo)
DISC = 0.06  # discretisation allowance, whitened units
SCHEDULES = ["csdi_quad", "vp_linear", "cosine", "learned"]
STEPS = {"ancestral": 200, "sde": 200, "ode": 50, "ddim": 100, "dpm_solver": 50}
N_SAMPLES = 2000  # per window; 2 windows → 4000 rows in one call


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small tensors: intra-op threads only add contention on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_oracle(schedule: NoiseSchedule) -> GaussianOracle:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(D, D, generator=g, dtype=torch.float64)
    cov = a @ a.T / D + 0.3 * torch.eye(D, dtype=torch.float64)  # eigenvalues ≈ 0.3 … 2.9
    mean = torch.linspace(-1.0, 1.5, D, dtype=torch.float64)
    return GaussianOracle(mean, cov, (K, L), schedule)


def make_cond(dtype: torch.dtype = torch.float32) -> Conditioning:
    """Two windows: 2 and 3 of the 6 entries observed."""
    mask = torch.tensor([[1, 0, 0, 0, 1, 0], [0, 0, 1, 1, 0, 1]], dtype=dtype).reshape(2, K, L)
    x = torch.tensor([[0.5, 0, 0, 0, -1.0, 0], [0, 0, 2.0, 1.0, 0, -0.5]], dtype=dtype)
    return Conditioning(x=x.reshape(2, K, L) * mask, mask=mask)


class AffineOracle:
    """GaussianOracle.eps evaluated through its affine structure, counting calls.

    For fixed t and conditioning row, ε̂(z) = a + M z exactly (GaussianOracle docstring). Evaluating
    the oracle at z = 0 and z = e_j (D + 1 rows per distinct conditioning) recovers (a, M), and the
    N rows become one batched mat-vec: the same function as oracle.eps at O(#windows) linear
    algebra instead of O(N). `scale` multiplies ε̂ (a deliberately wrong score for scale ≠ 1).
    """

    def __init__(self, oracle: GaussianOracle, scale: float = 1.0):
        self.oracle = oracle
        self.scale = scale
        self.calls = 0
        self._w = torch.randn(2, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def __call__(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        self.calls += 1
        n = z_t.shape[0]
        assert bool((t == t[0]).all()), "samplers evaluate all rows at one time"
        mask = cond.mask.reshape(n, D).to(torch.float64)
        x = mask * cond.x.reshape(n, D).to(torch.float64)
        # rows with equal conditioning share (a, M): group them by a random projection (collisions
        # have probability 0), much cheaper than torch.unique(dim=0)
        key = mask @ self._w[0] + x @ self._w[1]  # (N,)
        _, inv = torch.unique(key, return_inverse=True)  # (N,) group of each row
        u = int(inv.max()) + 1
        first = torch.zeros(u, dtype=torch.long).scatter_(0, inv, torch.arange(n))  # (U,)
        basis = torch.cat([torch.zeros(1, D), torch.eye(D)]).to(torch.float64)  # (D + 1, D)
        rows = Conditioning(
            x=x[first].repeat_interleave(D + 1, 0).reshape(-1, K, L),
            mask=mask[first].repeat_interleave(D + 1, 0).reshape(-1, K, L),
        )
        zb = basis.repeat(u, 1).reshape(-1, K, L)  # (U·(D + 1), K, L)
        eb = self.oracle.eps(zb, t[0].expand(zb.shape[0]), rows).reshape(u, D + 1, D)
        offset, lin = eb[:, 0], eb[:, 1:] - eb[:, :1]  # (U, D), (U, D, D): row j = M e_j
        z = z_t.reshape(n, D).to(torch.float64)
        eps = offset[inv] + torch.einsum("nj,njd->nd", z, lin[inv])  # (N, D)
        return (self.scale * eps).reshape(z_t.shape).to(z_t.dtype)


def exact_z1(oracle: GaussianOracle, cond: Conditioning, generator: torch.Generator) -> Tensor:
    """z_1 ~ q(z_1 | x_C) = N(α₁ m, α₁² C + σ₁² I) on target entries, 0 on cond entries."""
    m, c = oracle.conditional(cond)  # (N, D), (N, D, D)
    a, s = (
        v.to(torch.float64)
        for v in oracle.schedule.alpha_sigma(torch.ones((), dtype=torch.float64))
    )
    tmask = 1.0 - cond.mask.reshape(-1, D).to(torch.float64)
    cov = a**2 * c + s**2 * torch.diag_embed(tmask) + torch.diag_embed(1.0 - tmask)
    noise = torch.randn(m.shape, generator=generator, dtype=torch.float64)
    z = a * m + (torch.linalg.cholesky(cov) @ noise.unsqueeze(-1)).squeeze(-1)
    return (tmask * z).reshape(-1, K, L).to(cond.x.dtype)


def whitened_errors(samples: Tensor, mean: Tensor, cov: Tensor) -> tuple[Tensor, Tensor]:
    """Errors of the sample mean and covariance of `samples` (S, n) against N(mean, cov).

    In coordinates w = chol(cov)⁻¹(x − mean), divided by their standard errors: mean 1/√S,
    covariance √(2/S) (diagonal) and √(1/S) (off-diagonal). Returns (z_mean (n,), z_cov (n, n)).
    """
    s, n = samples.shape
    chol = torch.linalg.cholesky(cov)
    w = torch.linalg.solve_triangular(chol, (samples - mean).T, upper=False).T  # (S, n)
    eye = torch.eye(n, dtype=w.dtype)
    cov_err = torch.cov(w.T) - eye
    return w.mean(0), cov_err / torch.sqrt((1.0 + eye) / s)


def assert_matches_conditional(out: Tensor, oracle: GaussianOracle, cond: Conditioning) -> None:
    """out (B, S, K, L): target moments within N_SE standard errors + DISC of the exact ones."""
    m, c = oracle.conditional(cond)
    s = out.shape[1]
    for b in range(out.shape[0]):
        tm = cond.mask[b].reshape(D) == 0
        x = out[b].reshape(s, D)[:, tm].to(torch.float64)  # (S, n_target)
        mean_err, cov_z = whitened_errors(x, m[b][tm], c[b][tm][:, tm])
        se = 1.0 / math.sqrt(s)
        assert mean_err.abs().max() < N_SE * se + DISC, f"window {b}: mean error {mean_err}"
        allowance = N_SE + DISC / math.sqrt(1.0 / s)  # DISC in units of the off-diagonal s.e.
        assert cov_z.abs().max() < allowance, f"window {b}: covariance z-scores {cov_z}"


def run_from_exact_prior(
    name: str,
    sampler: str,
    scale: float = 1.0,
    seed: int = 1,
    steps: int | None = None,
    grid: str = "uniform",
) -> tuple[Tensor, GaussianOracle, Conditioning]:
    """Sampler started from the exact q(z_1 | x_C), so only its discretisation is tested."""
    schedule = get_schedule(name)
    oracle = make_oracle(schedule)
    cond = make_cond()
    rep = cond.repeat(N_SAMPLES)
    gen = torch.Generator().manual_seed(seed)
    z1 = exact_z1(oracle, rep, gen)
    ts = make_time_grid(steps or STEPS[sampler], grid, schedule)
    fn = SAMPLERS[sampler]
    out = fn(AffineOracle(oracle, scale), z1, ts, rep, gen, schedule=schedule)  # (B·S, K, L)
    return out.reshape(2, N_SAMPLES, K, L), oracle, cond


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("name", SCHEDULES)
def test_sampler_matches_exact_conditional(name: str, sampler: str) -> None:
    out, oracle, cond = run_from_exact_prior(name, sampler)
    assert_matches_conditional(out, oracle, cond)


DETERMINISTIC = ("ode", "ddim", "dpm_solver")


def exact_output_law(
    sampler: str, ts: Tensor, oracle: GaussianOracle, cond: Conditioning
) -> tuple[list[Tensor], list[Tensor]]:
    """Per window, mean (n,) and covariance (n, n) of a deterministic sampler's target output when
    z₁ ~ q(z₁ | x_C): with the affine ε̂ the sampler is an affine map out = a + A z₁, found
    from D + 1 runs per window (z₁ = 0 and the unit vectors on target entries)."""
    m, c = oracle.conditional(cond)
    a1, s1 = (
        v.to(torch.float64)
        for v in oracle.schedule.alpha_sigma(torch.ones((), dtype=torch.float64))
    )
    means, covs = [], []
    for b in range(cond.batch_size):
        tm = cond.mask[b].reshape(D) == 0
        n = int(tm.sum())
        basis = torch.zeros(n + 1, D, dtype=torch.float64)
        basis[1:, tm] = torch.eye(n, dtype=torch.float64)
        rows = cond.slice(b, b + 1).repeat(n + 1)
        rows = Conditioning(x=rows.x.to(torch.float64), mask=rows.mask.to(torch.float64))
        out = SAMPLERS[sampler](
            AffineOracle(oracle), basis.reshape(-1, K, L), ts, rows, torch.Generator(),
            schedule=oracle.schedule,
        ).reshape(n + 1, D)[:, tm]  # fmt: skip
        offset, lin = out[0], (out[1:] - out[0]).T  # out = offset + lin z₁[tm]
        mean_z1 = a1 * m[b][tm]
        cov_z1 = a1**2 * c[b][tm][:, tm] + s1**2 * torch.eye(n, dtype=torch.float64)
        means.append(offset + lin @ mean_z1)
        covs.append(lin @ cov_z1 @ lin.T)
    return means, covs


@pytest.mark.parametrize("sampler", DETERMINISTIC)
@pytest.mark.parametrize("name", SCHEDULES)
def test_deterministic_samples_follow_their_exact_law(name: str, sampler: str) -> None:
    """Against the law the sampler itself induces (no discretisation allowance: tolerances from
    the sample count alone), and that law within a small distance of the exact conditional
    (its discretisation error, which the convergence-order tests pin down)."""
    out, oracle, cond = run_from_exact_prior(name, sampler)
    ts = make_time_grid(STEPS[sampler], "uniform", oracle.schedule)
    means, covs = exact_output_law(sampler, ts, oracle, cond)
    m, c = oracle.conditional(cond)
    s = out.shape[1]
    for b in range(out.shape[0]):
        tm = cond.mask[b].reshape(D) == 0
        x = out[b].reshape(s, D)[:, tm].to(torch.float64)
        mean_z, cov_z = whitened_errors(x, means[b], covs[b])
        assert mean_z.abs().max() < N_SE / math.sqrt(s), f"window {b}: {mean_z}"
        assert cov_z.abs().max() < N_SE, f"window {b}: {cov_z}"
        chol = torch.linalg.cholesky(c[b][tm][:, tm])  # the exact conditional, whitened
        gap_mean = torch.linalg.solve_triangular(chol, (means[b] - m[b][tm])[:, None], upper=False)
        white = torch.linalg.solve_triangular(chol, covs[b], upper=False)
        white = torch.linalg.solve_triangular(chol, white.T, upper=False)
        gap_cov = white - torch.eye(len(white), dtype=white.dtype)
        assert gap_mean.abs().max() < DISC and gap_cov.abs().max() < DISC, (gap_mean, gap_cov)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_wrong_score_is_detected(sampler: str) -> None:
    """The same check must fail for ε̂ scaled by 0.5: the check has power."""
    out, oracle, cond = run_from_exact_prior("csdi_quad", sampler, scale=0.5)
    with pytest.raises(AssertionError):
        assert_matches_conditional(out, oracle, cond)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_sample_entry_point_from_prior(sampler: str) -> None:
    """End to end from z₁ ~ N(0, I): csdi_quad's α₁ ≈ 0.006 makes the prior mismatch negligible."""
    schedule = get_schedule("csdi_quad")
    oracle = make_oracle(schedule)
    cond = make_cond()
    out = sample(
        AffineOracle(oracle),
        cond,
        schedule,
        sampler=sampler,
        steps=STEPS[sampler],
        n_samples=N_SAMPLES,
        generator=torch.Generator().manual_seed(3),
    )
    assert out.shape == (2, N_SAMPLES, K, L)
    assert_matches_conditional(out, oracle, cond)


def test_affine_oracle_is_the_oracle() -> None:
    """The fast evaluation used above equals GaussianOracle.eps row by row."""
    oracle = make_oracle(get_schedule("cosine"))
    rep = make_cond(torch.float64).repeat(5)
    z = torch.randn(rep.x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.full((z.shape[0],), 0.37, dtype=torch.float64)
    torch.testing.assert_close(AffineOracle(oracle)(z, t, rep), oracle.eps(z, t, rep))


def csdi_reference(
    oracle: GaussianOracle, rep: Conditioning, generator: torch.Generator, n: int = 50
) -> Tensor:
    """CSDI's sampling loop, re-derived from Tashiro et al. 2021 (independent of our schedule).

    β = linspace(√1e-4, √0.5, n)², ᾱ = cumprod(1 − β); for t = n−1..0:
    z ← (z − β_t/√(1 − ᾱ_t) ε̂(z, ᾱ_t)) / √(1 − β_t), plus σ_t ξ for t > 0 with
    σ_t² = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t). ᾱ_t is the noise level of our time (t + 1)/n.
    Draw order as in `sample`: the prior z first, then one normal per step with t > 0.
    """
    beta = torch.linspace(1e-4**0.5, 0.5**0.5, n, dtype=torch.float64) ** 2
    abar = torch.cumprod(1.0 - beta, 0)
    tmask = 1.0 - rep.mask
    z = torch.randn(rep.x.shape, generator=generator, dtype=rep.x.dtype) * tmask
    for t in range(n - 1, -1, -1):
        tt = torch.full((z.shape[0],), (t + 1) / n, dtype=rep.x.dtype)
        eps = oracle.eps(z, tt, rep)
        z = (z - float(beta[t] / (1.0 - abar[t]).sqrt()) * eps) / float((1.0 - beta[t]).sqrt())
        if t > 0:
            sd = float((beta[t] * (1.0 - abar[t - 1]) / (1.0 - abar[t])).sqrt())
            z = z + sd * torch.randn(z.shape, generator=generator, dtype=z.dtype)
        z = z * tmask
    return z


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_csdi_quad_ancestral_50_is_csdi(dtype: torch.dtype, atol: float) -> None:
    schedule = get_schedule("csdi_quad")
    oracle = make_oracle(schedule)
    cond = make_cond(dtype)
    s = 16
    ours = sample(
        oracle.eps,
        cond,
        schedule,
        steps=50,
        n_samples=s,
        generator=torch.Generator().manual_seed(7),
    )
    ref = csdi_reference(oracle, cond.repeat(s), torch.Generator().manual_seed(7))
    tmask = (1.0 - cond.mask).unsqueeze(1).bool().expand_as(ours)  # (B, S, K, L)
    torch.testing.assert_close(ours[tmask], ref.reshape(ours.shape)[tmask], atol=atol, rtol=0.0)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_seed_cond_entries_and_chunking(sampler: str) -> None:
    """Same seed → identical samples; cond entries exactly cond.x; chunking changes nothing."""
    schedule = get_schedule("vp_linear")
    oracle = make_oracle(schedule)
    cond = make_cond()
    kw = {"sampler": sampler, "steps": 6, "n_samples": 5}

    def draw(seed: int, chunk_size: int | None = None) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        return sample(oracle.eps, cond, schedule, generator=gen, chunk_size=chunk_size, **kw)

    a, b = draw(11), draw(11)
    assert torch.equal(a, b)
    if sampler not in ("ode", "ddim", "dpm_solver"):
        assert not torch.equal(a, draw(12))
    mask = cond.mask.unsqueeze(1).bool().expand_as(a)  # (B, S, K, L)
    assert torch.equal(a[mask], cond.x.unsqueeze(1).expand_as(a)[mask])
    assert torch.isfinite(a).all()
    torch.testing.assert_close(draw(11, chunk_size=3), a, atol=1e-6, rtol=1e-6)


# network evaluations per sample for M steps (module docstring of csdi.diffusion.samplers)
NFE = {
    "ancestral": lambda m: m,
    "ddim": lambda m: m,
    "ode": lambda m: 2 * m - 1,
    "sde": lambda m: m,
    "dpm_solver": lambda m: m,
}


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_network_calls_per_sample(sampler: str, chunk_size: int | None) -> None:
    """NFE accounting: one call per evaluation for all B·S rows, ⌈B·S/chunk⌉ calls if chunked."""
    schedule = get_schedule("csdi_quad")
    counter = AffineOracle(make_oracle(schedule))
    steps, s = 7, 5
    gen = torch.Generator().manual_seed(0)
    kw = {"steps": steps, "n_samples": s, "generator": gen, "chunk_size": chunk_size}
    sample(counter, make_cond(), schedule, sampler=sampler, **kw)
    per_eval = 1 if chunk_size is None else math.ceil(2 * s / chunk_size)
    assert counter.calls == NFE[sampler](steps) * per_eval


def test_ddim_eta_one_is_ancestral_and_eta_zero_is_deterministic() -> None:
    """Song et al. 2021: η = 1 is the ancestral posterior step (same draws, same samples)."""
    schedule = get_schedule("cosine")
    oracle = make_oracle(schedule)
    cond = make_cond(torch.float64)

    def draw(sampler: str, seed: int, **options: float) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        return sample(
            oracle.eps,
            cond,
            schedule,
            sampler=sampler,
            steps=8,
            n_samples=4,
            generator=gen,
            **options,
        )

    torch.testing.assert_close(draw("ddim", 0, eta=1.0), draw("ancestral", 0), rtol=0, atol=1e-10)
    # η = 0 draws nothing after the prior: the sample is a function of z₁ alone
    assert not torch.equal(draw("ddim", 0, eta=0.0), draw("ddim", 1, eta=0.0))
    torch.testing.assert_close(draw("ddim", 0, eta=0.0), draw("ddim", 0, eta=0.0))


@pytest.mark.parametrize(
    ("option", "value"), [("method", "srk"), ("adaptive", True), ("lam", 0.5), ("lam", 1.0)]
)
def test_sde_options_match_oracle(option: str, value: object) -> None:
    """SRK (strong order 1.5) and adaptive steps solve the same reverse SDE; λ ∈ (0, 1] (part
    stochastic, or the probability-flow ODE) through torchsde samples the same conditional law."""
    schedule = get_schedule("vp_linear")
    oracle = make_oracle(schedule)
    cond = make_cond()
    options = {option: value, "method": "srk"} if option == "adaptive" else {option: value}
    out = sample(
        AffineOracle(oracle),
        cond,
        schedule,
        sampler="sde",
        steps=50,
        n_samples=N_SAMPLES,
        generator=torch.Generator().manual_seed(5),
        **options,
    )
    assert_matches_conditional(out, oracle, cond)


def test_bad_names_raise_listing_valid_ones() -> None:
    schedule = get_schedule("csdi_quad")
    oracle = make_oracle(schedule)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="ancestral"):
        sample(oracle.eps, make_cond(), schedule, sampler="euler", generator=gen)
    with pytest.raises(ValueError, match="eta"):
        sample(oracle.eps, make_cond(), schedule, sampler="ddim", generator=gen, etaa=1.0)
    with pytest.raises(ValueError, match="quadratic"):
        sample(oracle.eps, make_cond(), schedule, generator=gen, time_grid="log")


def test_time_grids() -> None:
    torch.testing.assert_close(
        make_time_grid(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        make_time_grid(2, "quadratic"), torch.tensor([1.0, 0.25, 0.0], dtype=torch.float64)
    )
    with pytest.raises(ValueError):
        make_time_grid(2, torch.tensor([1.0, 0.6, 0.7]))
    # a non-uniform grid reaches the sampler: the network is called at its times
    schedule = get_schedule("cosine")
    oracle = make_oracle(schedule)
    seen: list[float] = []

    def spy(z: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        seen.append(float(t[0]))
        return oracle.eps(z, t, cond)

    gen = torch.Generator().manual_seed(0)
    sample(
        spy, make_cond(), schedule, sampler="ddim", steps=4, generator=gen, time_grid="quadratic"
    )
    assert seen == pytest.approx([1.0, 0.5625, 0.25, 0.0625])


@pytest.mark.parametrize("name", SCHEDULES)
def test_logsnr_grid_is_uniform_in_gamma(name: str) -> None:
    schedule = get_schedule(name)
    ts = make_time_grid(6, "logsnr", schedule)
    assert ts.shape == (7,) and ts[0] == 1.0 and ts[-2] == LOGSNR_T_LAST and ts[-1] == 0.0
    assert bool((ts[1:] < ts[:-1]).all())
    with torch.no_grad():
        gamma = schedule.gamma(ts[:-1]).to(torch.float64)
    steps = gamma[:-1] - gamma[1:]  # (5,) equal decrements of γ
    tol = 1e-5 if name == "learned" else 1e-9  # the learned γ is a float32 network
    torch.testing.assert_close(steps, steps.mean().expand(5), rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="needs the noise schedule"):
        make_time_grid(6, "logsnr")


def test_logsnr_grid_makes_ten_step_dpm_solver_exact_on_vp_linear() -> None:
    """At 10 NFE DPM-Solver++(2M) misses the exact conditional on vp_linear with the uniform grid
    (worst whitened error ≈ 0.19) and matches it with the log-SNR grid (≈ 0.07)."""
    out, oracle, cond = run_from_exact_prior("vp_linear", "dpm_solver", steps=10, grid="logsnr")
    assert_matches_conditional(out, oracle, cond)
    out, oracle, cond = run_from_exact_prior("vp_linear", "dpm_solver", steps=10)
    with pytest.raises(AssertionError):
        assert_matches_conditional(out, oracle, cond)


@pytest.mark.parametrize("name", ["csdi_quad", "cosine"])
def test_logsnr_grid_keeps_a_narrow_posteriors_spread(name: str) -> None:
    """x̂₀ = E[x | z_t] at the grid's last time has spread s²/√(s² + σ̃²) for a posterior of std s:
    the grid must end at a σ̃ well below s. A posterior 30× narrower than `make_oracle`'s (std
    0.01–0.03, like a smooth series' hidden values given its neighbours): 10-step DPM-Solver++
    keeps ≥ 0.93 of each entry's std (0.83 and 0.53 on these schedules when the grid ended at
    CSDI's t = 1/50), computed from the sampler's exact output law, so no sampling noise."""
    schedule = get_schedule(name)
    base = make_oracle(schedule)
    scale = 0.03
    oracle = GaussianOracle(base.mean * scale, base.cov * scale**2, (K, L), schedule)
    cond = make_cond(torch.float64)
    cond = Conditioning(x=cond.x * scale, mask=cond.mask)
    ts = make_time_grid(10, "logsnr", schedule)
    _, covs = exact_output_law("dpm_solver", ts, oracle, cond)
    _, c = oracle.conditional(cond)
    for b in range(cond.batch_size):
        tm = cond.mask[b].reshape(D) == 0
        kept = (covs[b].diagonal() / c[b][tm][:, tm].diagonal()).sqrt()
        assert bool((kept > 0.93).all()) and bool((kept < 1.05).all()), f"window {b}: {kept}"


def test_dpm_solver_first_step_is_ddim() -> None:
    """DPM-Solver++(2M)'s first (first-order) update is DDIM with η = 0 (Lu et al. 2022): with
    two grid steps only that update runs, so both give the same samples; with three, the
    second-order correction makes them differ."""
    schedule = get_schedule("cosine")
    oracle = make_oracle(schedule)
    cond = make_cond(torch.float64)

    def draw(sampler: str, steps: int) -> Tensor:
        gen = torch.Generator().manual_seed(3)
        return sample(
            oracle.eps, cond, schedule, sampler=sampler, steps=steps, n_samples=4, generator=gen
        )

    torch.testing.assert_close(draw("dpm_solver", 2), draw("ddim", 2), atol=1e-12, rtol=0.0)
    assert not torch.allclose(draw("dpm_solver", 3), draw("ddim", 3), atol=1e-6)


def test_sde_steps_along_the_time_grid() -> None:
    """Two grids with the same ends and step count but different interiors give different
    samples (the steps follow the grid), and each grid's network calls are at its points."""
    schedule = get_schedule("vp_linear")
    oracle = make_oracle(schedule)
    seen: list[list[float]] = []

    def recording(z: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        seen[-1].append(float(t[0]))
        return oracle.eps(z, t, cond)

    uniform = make_time_grid(8, "uniform")
    bent = uniform.clone()
    bent[1:-2] = bent[1:-2] ** 1.2  # same ends 1 and 1/8, interior moved
    out = []
    for grid in (uniform, bent):
        seen.append([])
        out.append(
            sample(
                recording,
                make_cond(torch.float64),
                schedule,
                sampler="sde",
                steps=8,
                generator=torch.Generator().manual_seed(0),
                time_grid=grid,
                lam=1.0,
            )
        )
        torch.testing.assert_close(
            torch.tensor(seen[-1], dtype=torch.float64), grid[:-1], rtol=0, atol=1e-12
        )
    assert float((out[0] - out[1]).abs().max()) > 1e-3
