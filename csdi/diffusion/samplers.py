"""Samplers of the conditional reverse process: one entry point `sample` and the registry SAMPLERS.

Every sampler is a `@torch.no_grad()` function
    fn(eps_model, z, ts, cond, generator, *, schedule, **options) -> samples (N, K, L)
of a noise predictor (any `NoisePredictor`; samplers never know the architecture), the initial
state z (N, K, L) at t = ts[0] (zero on cond entries), a descending time grid ts (M + 1,) from 1 to
0 (M = steps), the conditioning with batch N = B·S and a torch.Generator (the only source of
randomness). Only target entries (cond.mask == 0) evolve; the network always sees the cond
entries clean through `cond`, and the returned tensor equals cond.x exactly there.

The grid's last point t_M = 0 is never evaluated: the final step returns the denoised estimate
x̂₀ = (z − σ ε̂)/α at the previous grid point (CSDI/DDPM's last step, a Euler step to σ/α = 0).
Network evaluations per sample (NFE) for M steps:
    ancestral M,   ddim M,   ode 2M − 1,   sde: euler M (M − 1 drift evaluations, one for x̂₀),
    srk 9(M − 1) + 1 (torchsde's SRID2 tableau), adaptive: data dependent.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

import torch
import torchsde
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning, NoisePredictor
from csdi.diffusion.noise import NoiseSource, randn_like, random_integer
from csdi.diffusion.parameterization import eps_to_x0
from csdi.diffusion.schedule import NoiseSchedule, alpha_sigma_from_gamma
from csdi.diffusion.sde import VPSDE

SamplerFn = Callable[..., Tensor]

TIME_GRIDS: Final = ("uniform", "quadratic", "logsnr")
#: Last evaluated time of the "logsnr" grid, near the schedules' low-noise end (t = 0). The
#: samplers return x̂₀ = E[x | z_t] there, whose spread about the conditional mean is s²/√(s² + σ̃²)
#: for a Gaussian posterior of std s (σ̃ = σ_t/α_t): too narrow unless σ̃ ≪ s. On csdi_quad σ̃ is
#: 0.010 at CSDI's t = 1/50 and 0.0040 at 1/1000 (0.0038 at t = 0): with 10 DPM-Solver++ steps a
#: posterior of std ≈ 0.03 keeps 0.83–0.93 of its spread at 1/50, 0.93–0.99 at 1/1000
#: (tests/diffusion/test_samplers_gaussian.py).
LOGSNR_T_LAST: Final = 1e-3
_NOT_OPTIONS: Final = ("eps_model", "z", "ts", "cond", "generator", "schedule")


@dataclass(frozen=True)
class NoisyValues:
    """Observed values known only up to Gaussian noise, for purification (`ancestral`'s `noisy`).

    y:     (N, K, L) the noisy values (read where `mask` is 1)
    mask:  (N, K, L) 1 where an entry is a noisy observation (a target, not a cond entry)
    std:   (N, K, L) the noise standard deviation s there, y = x + s·n, n ~ N(0, 1)
    start: r ≥ 1, the level σ/α = r·s where the reverse process takes the entries up: 1 is the
           matched level (exact for Gaussian noise of std s); above it, the start is
           randomised further (Yoon et al. 2021's noise injection before purification), so
           the samples follow x given y plus extra noise of std √(r² − 1)·s: robust to
           outliers and understated noise, at the price of detail.
    """

    y: Tensor
    mask: Tensor
    std: Tensor
    start: float = 1.0

    def __post_init__(self) -> None:
        if not self.start >= 1.0:
            raise ValueError(f"the purification start must be at least 1, got {self.start}")

    def repeat(self, n_samples: int) -> NoisyValues:
        """Each row repeated `n_samples` times consecutively, as `Conditioning.repeat`."""
        y, mask, std = (
            a.repeat_interleave(n_samples, dim=0) for a in (self.y, self.mask, self.std)
        )
        return NoisyValues(y, mask, std, self.start)


def _diffuse_noisy(
    z: Tensor, noisy: NoisyValues, alpha: float, sigma: float, noise: Tensor
) -> Tensor:
    """Where σ/α > r·s (r = `noisy.start`), replace z by α y + √(σ² − α² s²) ε: y = x + s n
    makes α y the forward process at the level σ/α = s, and the rest of the noise is added
    fresh, so this is a draw of z_t given y (given a noisier y when r > 1)."""
    extra = (sigma**2 - alpha**2 * noisy.std**2).clamp_min(0.0)
    above = (noisy.mask > 0) & (sigma > noisy.start * alpha * noisy.std)
    return torch.where(above, alpha * noisy.y + extra.sqrt() * noise, z)


def _merge(cond: Conditioning, x0: Tensor) -> Tensor:
    """cond.x on cond entries, x̂₀ on target entries (exactly, no arithmetic on cond values)."""
    return torch.where(cond.mask.bool(), cond.x.to(x0.dtype), x0)


def _alpha_sigma(schedule: NoiseSchedule, ts: Tensor) -> tuple[list[float], list[float], Tensor]:
    """α, σ (as Python floats, computed in float64) and γ (float64) on the grid."""
    gamma = schedule.gamma(ts.to(torch.float64)).to(torch.float64)
    alpha, sigma = alpha_sigma_from_gamma(gamma)
    return alpha.tolist(), sigma.tolist(), gamma


def _x0(z: Tensor, eps: Tensor, alpha: float, sigma: float) -> Tensor:
    """x̂₀ with scalar α, σ (through the one conversion in `parameterization`)."""
    return eps_to_x0(z, eps, torch.tensor(alpha, dtype=z.dtype), torch.tensor(sigma, dtype=z.dtype))


def _eps(eps_model: NoisePredictor, z: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    """ε̂ for all N rows at the scalar time t.

    Its cond entries are arbitrary (NoisePredictor protocol); every update below is multiplied by
    the target mask and `_merge` writes cond.x there, so they never reach the result.
    """
    return eps_model(z, t.to(z.dtype).expand(z.shape[0]), cond)


def _last_x0(
    eps_model: NoisePredictor,
    z: Tensor,
    ts: Tensor,
    cond: Conditioning,
    alpha: list[float],
    sigma: list[float],
) -> Tensor:
    """The final call of a sampler: x̂₀ at the last grid point before t = 0, cond entries clean."""
    m = len(ts) - 1
    eps = _eps(eps_model, z, ts[m - 1], cond)
    return _merge(cond, _x0(z, eps, alpha[m - 1], sigma[m - 1]))


@torch.no_grad()
def ancestral(
    eps_model: NoisePredictor,
    z: Tensor,
    ts: Tensor,
    cond: Conditioning,
    generator: NoiseSource,
    *,
    schedule: NoiseSchedule,
    noisy: NoisyValues | None = None,
) -> Tensor:
    """Ancestral sampling with the exact Gaussian posterior q(z_s | z_t, x = x̂₀).

    VDM (Kingma et al. 2021, eq. 33–34) / DDPM (Ho et al. 2020, Alg. 2): with c = −expm1(γ_s − γ_t),
    z_s = (α_s/α_t)(z_t − c σ_t ε̂) + √c σ_s ε. On csdi_quad's 50-step grid this is CSDI's update
    (z − β_n/√(1 − ᾱ_n) ε̂)/√(1 − β_n) + σ̃_n ε exactly. Draws one (N, K, L) normal per step but
    the last. NFE = M.

    `noisy` (purification, after Yoon et al. 2021's diffusion purification): entries observed
    as y = x + s·n are held at draws of z_t | y while σ_t/α_t > r·s (r = `noisy.start`, 1 by
    default) and sampled freely below, so the reverse process starts them where the forward
    process would have put y; with r = 1, one s for every entry and no missing ones this
    samples x | y exactly (given the exact ε̂).
    """
    alpha, sigma, gamma = _alpha_sigma(schedule, ts)
    tmask = (1.0 - cond.mask).to(z.dtype)
    m = len(ts) - 1
    for i in range(m - 1):
        if noisy is not None:
            z = _diffuse_noisy(z, noisy, alpha[i], sigma[i], randn_like(z, generator))
        eps = _eps(eps_model, z, ts[i], cond)
        c = -math.expm1(float(gamma[i + 1] - gamma[i]))
        z = torch.add(z, eps, alpha=-c * sigma[i]).mul_(alpha[i + 1] / alpha[i])  # posterior mean
        z.add_(randn_like(z, generator), alpha=math.sqrt(c) * sigma[i + 1]).mul_(tmask)
    return _last_x0(eps_model, z, ts, cond, alpha, sigma)


@torch.no_grad()
def ddim(
    eps_model: NoisePredictor,
    z: Tensor,
    ts: Tensor,
    cond: Conditioning,
    generator: NoiseSource,
    *,
    schedule: NoiseSchedule,
    eta: float = 0.0,
) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12): z_s = α_s x̂₀ + √(σ_s² − ς²) ε̂ + ς ε.

    ς² = η² c σ_s² with c = −expm1(γ_s − γ_t) (the ancestral posterior variance times η²): η = 0 is
    deterministic (Euler on the probability-flow ODE in z/α vs σ/α) and draws no noise; η = 1 is
    the ancestral sampler, with the same draws. NFE = M.
    """
    if not eta >= 0.0:  # NaN too
        raise ValueError(f"ddim needs eta >= 0, got {eta}")
    alpha, sigma, gamma = _alpha_sigma(schedule, ts)
    tmask = (1.0 - cond.mask).to(z.dtype)
    m = len(ts) - 1
    for i in range(m - 1):
        eps = _eps(eps_model, z, ts[i], cond)
        c = -math.expm1(float(gamma[i + 1] - gamma[i]))
        var = min(eta**2 * c, 1.0) * sigma[i + 1] ** 2  # ς², at most σ_s²
        # α_s x̂₀ + √(σ_s² − ς²) ε̂ with x̂₀ = (z − σ_t ε̂)/α_t, as r (z + b ε̂) in one pass
        r = alpha[i + 1] / alpha[i]
        b = (math.sqrt(sigma[i + 1] ** 2 - var) - r * sigma[i]) / r
        z = torch.add(z, eps, alpha=b).mul_(r)
        if var > 0.0:
            z.add_(randn_like(z, generator), alpha=math.sqrt(var))
        z.mul_(tmask)
    return _last_x0(eps_model, z, ts, cond, alpha, sigma)


@torch.no_grad()
def ode(
    eps_model: NoisePredictor,
    z: Tensor,
    ts: Tensor,
    cond: Conditioning,
    generator: NoiseSource,
    *,
    schedule: NoiseSchedule,
) -> Tensor:
    """Probability-flow ODE with Heun's second-order step (Karras et al. 2022, Algorithm 1).

    In the scaled state x = z/α and noise level σ̃ = σ/α = exp(γ/2), the VP probability-flow ODE
    is dx/dσ̃ = ε̂(α x, t) (the DDIM ODE, Song et al. 2021 eq. 14): Heun steps between grid points,
    and the last step is Euler to σ̃ = 0, which is exactly x̂₀. Deterministic (the generator is
    unused). NFE = 2M − 1.
    """
    del generator
    alpha, sigma, _ = _alpha_sigma(schedule, ts)
    tmask = (1.0 - cond.mask).to(z.dtype)
    sig = [s / a for a, s in zip(alpha, sigma, strict=True)]  # σ̃_i
    m = len(ts) - 1
    x = z / alpha[0]
    for i in range(m - 1):
        d = _eps(eps_model, alpha[i] * x, ts[i], cond)
        h = sig[i + 1] - sig[i]
        x_pred = torch.add(x, d, alpha=h)
        d_pred = _eps(eps_model, alpha[i + 1] * x_pred, ts[i + 1], cond)
        x = torch.add(x, torch.add(d, d_pred), alpha=0.5 * h).mul_(tmask)
    d = _eps(eps_model, alpha[m - 1] * x, ts[m - 1], cond)
    return _merge(cond, x - sig[m - 1] * d)


@torch.no_grad()
def sde(
    eps_model: NoisePredictor,
    z: Tensor,
    ts: Tensor,
    cond: Conditioning,
    generator: NoiseSource,
    *,
    schedule: NoiseSchedule,
    method: str = "euler",
    adaptive: bool = False,
    rtol: float = 1e-3,
    atol: float = 1e-3,
    lam: float = 0.0,
) -> Tensor:
    """Reverse-time SDE (Song et al. 2021, eq. 6) integrated by `torchsde.sdeint`.

    The plug-in reverse process of `VPSDE.reverse` (λ = `lam`; 0: reverse SDE, 1: probability-flow
    ODE) runs forward in s = 1 − t along the grid from t = ts[0] to the last positive grid point
    t = ts[−2], one solver step per grid interval (so `time_grid` shapes the steps as it does for
    the other samplers), with the state flattened to (N, K·L); `adaptive` instead lets torchsde
    choose the steps between those ends, starting from the first interval. `method`: "euler"
    (Euler–Maruyama) or "srk" (strong order 1.5 Rößler SRK, needs space-time Lévy area). One
    `torchsde.BrownianInterval` spans the whole run; its integer entropy is drawn from
    `generator`. Ends with x̂₀ at ts[−2]. NFE (euler) = M.
    """
    if method not in ("euler", "srk"):
        raise ValueError(f"unknown sde method {method!r}; choose one of ['euler', 'srk']")
    n = z.shape[0]
    tmask = (1.0 - cond.mask).to(z.dtype)
    alpha, sigma, _ = _alpha_sigma(schedule, ts)
    entropy = random_integer(generator)
    s_grid = (1.0 - ts[:-1].to(torch.float64)).tolist()  # ascending s of the evaluated points
    if len(s_grid) > 1:

        def eps_fn(z_t: Tensor, t: Tensor) -> Tensor:
            return _eps(eps_model, z_t, t[0], cond)

        reverse = VPSDE(schedule).reverse(eps_fn, tmask, lam=lam)
        y = z.reshape(n, -1)  # (N, K·L)
        bm = torchsde.BrownianInterval(
            t0=s_grid[0],
            t1=s_grid[-1],
            size=tuple(y.shape),
            dtype=y.dtype,
            device=y.device,
            entropy=entropy,
            levy_area_approximation="space-time" if method == "srk" else "none",
        )
        spans = [(s_grid[0], s_grid[-1])] if adaptive else list(pairwise(s_grid))
        for a, b in spans:
            # dt a hair above the span, so that rounding never adds a tiny second step; torchsde
            # clips the step to b. Adaptive: dt is the first grid interval, the initial step.
            dt = (s_grid[1] - s_grid[0]) if adaptive else (b - a) * (1.0 + 1e-9)
            span = torch.tensor([a, b], dtype=torch.float64, device=y.device)
            y = torchsde.sdeint(
                reverse,
                y,
                span,
                bm=bm,
                method=method,
                dt=dt,
                adaptive=adaptive,
                rtol=rtol,
                atol=atol,
            )[-1]
        z = y.reshape(z.shape)  # (N, K, L) at ts[−2]
    return _last_x0(eps_model, z, ts, cond, alpha, sigma)


@torch.no_grad()
def dpm_solver(
    eps_model: NoisePredictor,
    z: Tensor,
    ts: Tensor,
    cond: Conditioning,
    generator: NoiseSource,
    *,
    schedule: NoiseSchedule,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): second-order multistep
    on the data prediction x̂₀ in λ = log(α/σ) = −γ/2, deterministic.

    z_s = (σ_s/σ_t) z_t + α_s (1 − e^{−h}) D with h = λ_s − λ_t and D = x̂₀ (first step) or
    (1 + 1/2r) x̂₀ − (1/2r) x̂₀_prev, r = h_prev/h. Its first-order form is DDIM with η = 0;
    working on x̂₀ rather than ε̂ keeps large-noise errors from being amplified by σ/α.
    The last call returns x̂₀ at the grid's last time before 0, as the other samplers do. NFE = M.
    """
    del generator
    alpha, sigma, gamma = _alpha_sigma(schedule, ts)
    tmask = (1.0 - cond.mask).to(z.dtype)
    lambdas = [-0.5 * float(g) for g in gamma]  # λ = log(α/σ), not the sde sampler's λ
    m = len(ts) - 1
    prev_x0: Tensor | None = None
    h_prev = 0.0
    for i in range(m - 1):
        x0 = _x0(z, _eps(eps_model, z, ts[i], cond), alpha[i], sigma[i])
        h = lambdas[i + 1] - lambdas[i]
        if prev_x0 is None:
            d = x0
        else:
            # D = x̂₀ + (x̂₀ − x̂₀_prev)/(2r), r = h_prev/h
            d = torch.add(x0, torch.sub(x0, prev_x0), alpha=h / (2.0 * h_prev))
        z = torch.add(z * (sigma[i + 1] / sigma[i]), d, alpha=-alpha[i + 1] * math.expm1(-h))
        z.mul_(tmask)
        prev_x0, h_prev = x0, h
    return _last_x0(eps_model, z, ts, cond, alpha, sigma)


SAMPLERS: Final[dict[str, SamplerFn]] = {
    "ancestral": ancestral,
    "sde": sde,
    "ode": ode,
    "ddim": ddim,
    "dpm_solver": dpm_solver,
}


def make_time_grid(
    steps: int, kind: str | Tensor = "uniform", schedule: NoiseSchedule | None = None
) -> Tensor:
    """Descending grid (steps + 1,) in float64 from t = 1 to t = 0.

    "uniform": t_i = i/M (CSDI's grid for csdi_quad); "quadratic": t_i = (i/M)², denser near the
    data (Song et al. 2021, DDIM); "logsnr": γ = −log SNR uniform from γ(1) to γ(`LOGSNR_T_LAST`)
    over the M evaluated points (then t = 0), the spacing of DPM-Solver (Lu et al. 2022) — it
    needs the `schedule`; or an explicit strictly decreasing tensor from 1 to 0. With the exact
    Gaussian score the log-SNR grid makes 10-step DPM-Solver++ exact on vp_linear but not better
    on csdi_quad; on the trained PhysioNet model it was the better 10-step grid
    (reports/performance/sampler_quality_focus.md).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if isinstance(kind, Tensor):
        ts = kind.to(torch.float64).flatten()
        ok = ts.shape[0] == steps + 1 and bool((ts[1:] < ts[:-1]).all())
        if not ok or float(ts[0]) != 1.0 or float(ts[-1]) != 0.0:
            raise ValueError(f"time_grid must be {steps + 1} strictly decreasing times from 1 to 0")
        return ts
    u = torch.arange(steps, -1, -1, dtype=torch.float64) / steps  # (M + 1,) = 1 … 0
    if kind == "uniform":
        return u
    if kind == "quadratic":
        return u**2
    if kind == "logsnr":
        if schedule is None:
            raise ValueError("time_grid 'logsnr' needs the noise schedule")
        if steps == 1:
            return u
        # on the schedule's device (its buffers or parameters may live on a GPU); returned on CPU
        device = next(iter([*schedule.parameters(), *schedule.buffers()]), torch.empty(0)).device
        ends = torch.tensor([1.0, LOGSNR_T_LAST], dtype=torch.float64, device=device)
        with torch.no_grad():
            g_hi, g_lo = schedule.gamma(ends).to(torch.float64).tolist()
            gammas = torch.linspace(g_hi, g_lo, steps, dtype=torch.float64, device=device)
            ts = schedule.t_of_gamma(gammas).to(torch.float64).cpu()  # (M,) evaluated
        ts[0], ts[-1] = 1.0, LOGSNR_T_LAST  # exact ends (bisection is within 1e-18)
        return torch.cat([ts, ts.new_zeros(1)])
    raise ValueError(f"unknown time_grid {kind!r}; choose one of {list(TIME_GRIDS)} or a tensor")


class _Chunked:
    """A NoisePredictor that evaluates `eps_model` on consecutive row chunks of ≤ chunk_size.

    The conditioning is sliced once per `cond` object, not at every call, so a predictor that
    caches per conditioning object (`ScoreNetwork.cached`) sees the same chunk objects at every
    step and computes their side information once."""

    def __init__(self, eps_model: NoisePredictor, chunk_size: int):
        self.eps_model = eps_model
        self.chunk_size = chunk_size
        self._sliced: tuple[Conditioning, list[Conditioning]] | None = None

    def _slices(self, cond: Conditioning, n: int) -> list[Conditioning]:
        if self._sliced is None or self._sliced[0] is not cond:
            c = self.chunk_size
            self._sliced = (cond, [cond.slice(a, a + c) for a in range(0, n, c)])
        return self._sliced[1]

    def __call__(self, z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        n, c = z_t.shape[0], self.chunk_size
        if n <= c:
            return self.eps_model(z_t, t, cond)
        parts = [
            self.eps_model(z_t[a : a + c], t[a : a + c], part)
            for a, part in zip(range(0, n, c), self._slices(cond, n), strict=True)
        ]
        return torch.cat(parts, dim=0)  # (N, K, L)


@torch.no_grad()
def sample(
    eps_model: NoisePredictor,
    cond: Conditioning,
    schedule: NoiseSchedule,
    *,
    sampler: str = "ancestral",
    steps: int = 50,
    n_samples: int = 1,
    generator: NoiseSource,
    chunk_size: int | None = None,
    time_grid: str | Tensor = "uniform",
    **options: object,
) -> Tensor:
    """n_samples draws of the target entries of each window given its cond entries: (B, S, K, L).

    All S samples of the B windows go through the network together as one batch of B·S rows
    (sample-minor, `Conditioning.repeat`), evaluated in chunks of at most `chunk_size` rows
    (default: all). The start is z₁ ~ N(0, I) on target entries (the VP prior), drawn first from
    `generator`; then the sampler (`SAMPLERS`, with its `options`) runs on the grid
    `make_time_grid(steps, time_grid, schedule)`. Cond entries of the result equal cond.x exactly.
    `generator` may be a `WindowNoise` (one stream per window, `csdi.diffusion.noise`).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
    fn = SAMPLERS[sampler]
    valid = [p for p in inspect.signature(fn).parameters if p not in _NOT_OPTIONS]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for sampler {sampler!r}; valid: {valid}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    ts = make_time_grid(steps, time_grid, schedule).to(cond.x.device)
    b, k, l = cond.x.shape
    rep = cond.repeat(n_samples)  # batch B·S, sample-minor
    z = randn_like(rep.x, generator) * (1.0 - rep.mask).to(rep.x.dtype)  # (B·S, K, L)
    model = eps_model if chunk_size is None else _Chunked(eps_model, chunk_size)
    noisy = options.get("noisy")
    if isinstance(noisy, NoisyValues):
        options["noisy"] = noisy.repeat(n_samples)
    out = fn(model, z, ts, rep, generator, schedule=schedule, **options)  # (B·S, K, L)
    return out.reshape(b, n_samples, k, l)  # (B, S, K, L)
