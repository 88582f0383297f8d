"""Training objectives of the score network, all masked to the target entries.

Every objective has one call signature (`Objective`) and returns a scalar: the per-window terms
summed over the batch and divided by the number of target entries in the batch (CSDI's loss
normalisation). The noisy state z_t = α_t x + σ_t ε is formed on all entries; the network is called
as `eps_model(z_t, t, cond)` and only target entries enter the loss. Masking uses `torch.where`, so
whatever the network writes on non-target entries (even NaN) cannot reach the loss.

- `dsm_loss`: denoising score matching E_{t,ε}[w(t)‖ε − ε̂_θ(α_t x + σ_t ε, t)‖²] (Vincent 2011;
  Ho et al. 2020), with w = 1 and t ~ U(0, 1) ("simple", CSDI) or w = ½γ'(t) ("elbo": VDM's
  continuous-time diffusion loss, Kingma et al. 2021 eq. 17, which equals Huang et al. 2021's
  g²-weighted DSM since g²‖s_θ − ∇log q(z_t|x)‖² = γ'‖ε − ε̂‖²).
  "min_snr": t ~ U(0, 1), w = min(SNR(t), 5)/SNR(t) with SNR = α²/σ² = e^(−γ) (Min-SNR-γ,
  Hang et al. 2023, ICCV, eq. 9 for ε-prediction): the low-noise steps, whose targets are
  nearly solved, stop dominating the gradient.
  "lognormal": w = 1 with the log-SNR λ = −γ drawn from N(1.02, 2.4²), clamped to the
  schedule's range (EDM's log-normal noise levels, Karras et al. 2022 §5, ln σ ~ N(−1.2, 1.2²)
  at σ_data = 0.5, restated for unit-scale data): training time moves from the nearly pure
  noise levels (a fifth of CSDI's t ~ U(0, 1) lies below λ = −5) to the middle ones.
- `ssm_loss`: sliced score matching (Song et al. 2019, eq. 5), σ_t²-weighted.
- `fd_ssm_loss`: finite-difference sliced score matching (Pang et al. 2020, §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal, Protocol

import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning, NoisePredictor
from csdi.diffusion.parameterization import eps_to_score
from csdi.diffusion.schedule import NoiseSchedule, alpha_sigma_from_gamma

Weighting = Literal["simple", "elbo", "min_snr", "lognormal"]
#: Min-SNR-γ's clip on the signal-to-noise ratio (Hang et al. 2023 use 5)
MIN_SNR_GAMMA: Final[float] = 5.0
#: mean and std of the log-SNR under the "lognormal" weighting: EDM's ln σ ~ N(−1.2, 1.2²) at
#: σ_data = 0.5 (Karras et al. 2022), i.e. ln(σ/σ_data) ~ N(−0.51, 1.2²), and λ = −2 ln σ for
#: unit-scale data
LOGNORMAL_LOGSNR: Final[tuple[float, float]] = (1.02, 2.4)
ScheduleGradient = Literal["elbo", "variance"]
Projection = Literal["rademacher", "gaussian"]


class Objective(Protocol):
    """The call signature shared by every training objective; returns a scalar loss."""

    def __call__(
        self,
        eps_model: NoisePredictor,
        x0: Tensor,
        cond: Conditioning,
        target_mask: Tensor,
        schedule: NoiseSchedule,
        *,
        generator: torch.Generator,
        antithetic: bool = False,
    ) -> Tensor: ...


@dataclass(frozen=True)
class TimeSample:
    """Diffusion times t (N,), their γ(t) (N,) and the weight multiplying ‖ε − ε̂‖² (N,)."""

    t: Tensor
    gamma: Tensor
    weight: Tensor


def uniform_times(
    n_rows: int,
    n_cols: int,
    *,
    generator: torch.Generator,
    antithetic: bool,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """Uniforms on [0, 1), shape (n_rows, n_cols).

    antithetic: each row is (u_r + c/n_cols) mod 1 with one u_r ~ U(0, 1) per row, VDM's
    low-discrepancy sampler (Kingma et al. 2021, Appendix I.2); every entry is still U(0, 1).
    """
    if not antithetic:
        return torch.rand(n_rows, n_cols, generator=generator, dtype=dtype, device=device)
    u0 = torch.rand(n_rows, 1, generator=generator, dtype=dtype, device=device)
    offsets = torch.arange(n_cols, dtype=dtype, device=device) / n_cols
    return torch.remainder(u0 + offsets, 1.0)


def schedule_endpoints(schedule: NoiseSchedule, like: Tensor) -> tuple[Tensor, Tensor]:
    """(γ(0), γ(1)) as 0-dim tensors, differentiable w.r.t. a learned schedule."""
    ends = schedule.gamma(torch.tensor([0.0, 1.0], dtype=like.dtype, device=like.device))
    return ends[0], ends[1]


def gamma_uniform_time(u: Tensor, schedule: NoiseSchedule) -> TimeSample:
    """Importance-sampled times for the ELBO weighting: γ(t) uniform on [γ(0), γ(1)].

    γ = γ₀ + u(γ₁ − γ₀) gives t = γ⁻¹(γ) the density p(t) = γ'(t)/(γ₁ − γ₀), so the weight
    ½γ'(t)/p(t) = ½(γ₁ − γ₀) makes the estimate unbiased for E_{t~U(0,1)}[½γ'(t)‖ε − ε̂‖²]
    (Kingma et al. 2021, eq. 17 written in γ; Huang et al. 2021's importance sampler).

    t is found by bisection (no gradient), then one Newton step
    t = t* − (γ_θ(t*) − γ)/γ'(t*) with γ' held fixed: its value is t* refined and its gradient is
    the implicit-function one, dt/dθ = (dγ/dθ − ∂γ_θ/∂θ)/γ'. So a learned schedule receives the
    exact pathwise gradient of the γ-space estimator through the network's time input and the
    endpoints (α_t, σ_t are taken from γ directly).
    """
    g0, g1 = schedule_endpoints(schedule, u)
    gamma = g0 + u * (g1 - g0)
    with torch.no_grad():
        t_star = schedule.t_of_gamma(gamma.detach())
        slope = schedule.dgamma_dt(t_star).detach()
    t = (t_star - (schedule.gamma(t_star) - gamma) / slope).clamp(0.0, 1.0)
    return TimeSample(t=t, gamma=gamma, weight=(0.5 * (g1 - g0)).expand_as(u))


def _time_sample(
    u: Tensor, schedule: NoiseSchedule, weighting: Weighting, gamma_uniform: bool
) -> TimeSample:
    if weighting == "simple":
        return TimeSample(t=u, gamma=schedule.gamma(u), weight=torch.ones_like(u))
    if weighting == "elbo":
        if gamma_uniform:
            return gamma_uniform_time(u, schedule)
        # t ~ U(0, 1), w = ½γ'(t); the base dgamma_dt builds the graph, so a learned γ trains
        return TimeSample(t=u, gamma=schedule.gamma(u), weight=0.5 * schedule.dgamma_dt(u))
    if weighting == "min_snr":
        gamma = schedule.gamma(u)
        # min(SNR, c)/SNR = min(1, c·e^γ); a heuristic weight, so no gradient to the schedule
        weight = (MIN_SNR_GAMMA * torch.exp(gamma.detach())).clamp(max=1.0)
        return TimeSample(t=u, gamma=gamma, weight=weight)
    if weighting == "lognormal":
        return lognormal_time(u, schedule)
    raise ValueError(
        f"unknown DSM weighting {weighting!r}; "
        "choose one of ['elbo', 'lognormal', 'min_snr', 'simple']"
    )


def lognormal_time(u: Tensor, schedule: NoiseSchedule) -> TimeSample:
    """Times whose log-SNR λ = −γ(t) is N(μ, s²) (`LOGNORMAL_LOGSNR`) by inversion of the
    uniforms u, clamped to [−γ(1), −γ(0)]; weight 1. A heuristic law like Min-SNR's: no
    gradient reaches the schedule (a learned one refuses it)."""
    mean, std = LOGNORMAL_LOGSNR
    g0, g1 = (float(g) for g in schedule_endpoints(schedule, u))
    tiny = torch.finfo(u.dtype).tiny
    gamma = (-(mean + std * torch.special.ndtri(u.clamp(tiny, 1.0 - 1e-7)))).clamp(g0, g1)
    with torch.no_grad():
        t = schedule.t_of_gamma(gamma.detach())
    return TimeSample(t=t, gamma=schedule.gamma(t).detach(), weight=torch.ones_like(u))


def _check_shapes(x0: Tensor, target_mask: Tensor) -> Tensor:
    if x0.dim() != 3 or target_mask.shape != x0.shape:
        raise ValueError(
            f"x0 must be (B, K, L) and target_mask the same shape; got {tuple(x0.shape)} and "
            f"{tuple(target_mask.shape)}"
        )
    return target_mask != 0


def per_window_sum(a: Tensor) -> Tensor:
    """(N, K, L) → (N,) sum over entries."""
    return a.flatten(1).sum(1)


def _normalise(per_window: Tensor, target: Tensor) -> Tensor:
    """Σ_windows / number of target entries (CSDI's normalisation; 0 targets → divide by 1)."""
    return per_window.sum() / target.sum().clamp_min(1)


def noisy(x0: Tensor, gamma: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """ε ~ N(0, I) and z = α x0 + σ ε on all entries for γ (N,); returns (z, ε, σ (N, 1, 1))."""
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    alpha, sigma = alpha_sigma_from_gamma(gamma[:, None, None])
    return alpha * x0 + sigma * eps, eps, sigma


class _GradientScale(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by `holder.value`, set after the
    forward (the per-row loss is known only once the network has run)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, holder: _ScaleHolder) -> Tensor:
        ctx.holder = holder
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.holder.value, None


class _ScaleHolder:
    value: Tensor


def _variance_gradient(ts: TimeSample) -> tuple[TimeSample, _ScaleHolder]:
    """γ(t) and the weight with their gradients to be scaled by 2 L per row (set the holder's
    value to 2 L): the schedule then descends ∇E[L²] = E[2 L ∇L], the variance of the
    estimator (its mean is fixed by the endpoints), as VDM trains its schedule's interior
    (Kingma et al. 2021, §5 and Appendix I.2). The network's gradient is untouched: nothing of
    it lies upstream of γ(t) or the weight."""
    holder = _ScaleHolder()
    scaled = TimeSample(
        t=ts.t,
        gamma=_GradientScale.apply(ts.gamma, holder),
        weight=_GradientScale.apply(ts.weight, holder),
    )
    return scaled, holder


def dsm_terms(
    eps_model: NoisePredictor,
    x0: Tensor,
    cond: Conditioning,
    target: Tensor,
    schedule: NoiseSchedule,
    u: Tensor,
    *,
    weighting: Weighting,
    gamma_uniform: bool,
    generator: torch.Generator,
    schedule_gradient: ScheduleGradient = "elbo",
) -> Tensor:
    """Per-window w(t)‖ε − ε̂_θ(z_t, t)‖² over the target entries, (N,), at uniforms u (N,).

    `schedule_gradient` "variance": a learned schedule receives the gradient of the squared
    per-window terms (`_variance_gradient`) instead of the terms' own."""
    ts = _time_sample(u, schedule, weighting, gamma_uniform)
    holder = None
    if schedule_gradient == "variance":
        ts, holder = _variance_gradient(ts)
    elif schedule_gradient != "elbo":
        raise ValueError(
            f"schedule_gradient must be 'elbo' or 'variance', got {schedule_gradient!r}"
        )
    z, eps, _ = noisy(x0, ts.gamma, generator)
    eps_hat = eps_model(z, ts.t, cond)
    sq = torch.where(target, (eps - eps_hat) ** 2, 0.0)
    terms = ts.weight * per_window_sum(sq)
    if holder is not None:
        holder.value = 2.0 * terms.detach()
    return terms


def dsm_loss(
    eps_model: NoisePredictor,
    x0: Tensor,
    cond: Conditioning,
    target_mask: Tensor,
    schedule: NoiseSchedule,
    *,
    generator: torch.Generator,
    antithetic: bool = False,
    weighting: Weighting = "simple",
    gamma_uniform: bool = True,
    schedule_gradient: ScheduleGradient = "elbo",
) -> Tensor:
    """Denoising score matching, averaged over target entries (see the module docstring).

    weighting "simple": t ~ U(0, 1), w = 1 (CSDI). weighting "elbo": the VDM diffusion loss
    E_{t~U}[½γ'(t)‖ε − ε̂‖²]; with `gamma_uniform` (default) t is drawn with γ(t) uniform and
    weighted ½(γ₁ − γ₀) (`gamma_uniform_time`, lower variance, implicit gradient to a learned
    schedule), otherwise t ~ U(0, 1) with weight ½γ'(t) differentiated through the schedule.
    Both paths are unbiased for the same value and the same schedule gradient. weighting
    "min_snr": t ~ U(0, 1), w = min(SNR, 5)/SNR (Min-SNR-γ, Hang et al. 2023). weighting
    "lognormal": w = 1, t with −γ(t) ~ N(`LOGNORMAL_LOGSNR`) (`lognormal_time`).
    antithetic: t (or γ) spread as (u + b/B) mod 1 over the batch. `schedule_gradient`:
    "elbo" (the loss's own gradient) or "variance" (a learned schedule descends the variance
    of the per-window terms, VDM's rule for the schedule's interior; see `dsm_terms`).
    """
    target = _check_shapes(x0, target_mask)
    u = uniform_times(
        1, x0.shape[0], generator=generator, antithetic=antithetic, dtype=x0.dtype, device=x0.device
    ).reshape(-1)  # (B,)
    terms = dsm_terms(
        eps_model,
        x0,
        cond,
        target,
        schedule,
        u,
        weighting=weighting,
        gamma_uniform=gamma_uniform,
        generator=generator,
        schedule_gradient=schedule_gradient,
    )
    return _normalise(terms, target)


def _projections(
    target: Tensor, projection: Projection, generator: torch.Generator, like: Tensor
) -> Tensor:
    """Slicing directions v (B, K, L), zero off the target entries."""
    if projection == "rademacher":
        r = torch.randint(0, 2, like.shape, generator=generator, device=like.device)
        v = (2 * r - 1).to(like.dtype)
    elif projection == "gaussian":
        v = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    else:
        raise ValueError(
            f"unknown projection {projection!r}; choose one of ['gaussian', 'rademacher']"
        )
    return torch.where(target, v, 0.0)


def _ssm_setup(
    x0: Tensor,
    target_mask: Tensor,
    schedule: NoiseSchedule,
    generator: torch.Generator,
    antithetic: bool,
    projection: Projection,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Shared draws of the SSM objectives: (target, t (B,), z (B, K, L), σ (B, 1, 1), v)."""
    target = _check_shapes(x0, target_mask)
    t = uniform_times(
        1, x0.shape[0], generator=generator, antithetic=antithetic, dtype=x0.dtype, device=x0.device
    ).reshape(-1)  # (B,)
    z, _, sigma = noisy(x0, schedule.gamma(t), generator)
    v = _projections(target, projection, generator, x0)
    return target, t, z, sigma, v


def ssm_loss(
    eps_model: NoisePredictor,
    x0: Tensor,
    cond: Conditioning,
    target_mask: Tensor,
    schedule: NoiseSchedule,
    *,
    generator: torch.Generator,
    antithetic: bool = False,
    projection: Projection = "rademacher",
) -> Tensor:
    """Sliced score matching σ_t² E[vᵀ∇_z(vᵀ s_θ) + ½‖s_θ‖²] (Song et al. 2019, eq. 5, "SSM-VR").

    t ~ U(0, 1), z ~ q(z_t | x), s_θ = −ε̂_θ/σ_t on the target entries, v zero elsewhere, so
    only the target block of the Jacobian is probed. vᵀ∇(vᵀs) is a Hessian-vector product
    (double backward, graph kept for the parameters). In expectation 2·ssm + 1 = dsm "simple"
    (Stein's identity: E[εᵀε̂] = σ E[∇·ε̂]), so both have the same minimiser, the true score.
    """
    target, t, z, sigma, v = _ssm_setup(
        x0, target_mask, schedule, generator, antithetic, projection
    )
    with torch.enable_grad():  # the Hessian-vector product needs autograd even in evaluation
        if not z.requires_grad:
            z.requires_grad_(True)
        score = torch.where(target, eps_to_score(eps_model(z, t, cond), sigma), 0.0)
        (jv,) = torch.autograd.grad((v * score).sum(), z, create_graph=True)  # ∇_z(vᵀs)
        per_window = sigma.flatten() ** 2 * (
            per_window_sum(v * jv) + 0.5 * per_window_sum(score**2)
        )
    return _normalise(per_window, target)


def fd_ssm_loss(
    eps_model: NoisePredictor,
    x0: Tensor,
    cond: Conditioning,
    target_mask: Tensor,
    schedule: NoiseSchedule,
    *,
    generator: torch.Generator,
    antithetic: bool = False,
    projection: Projection = "rademacher",
    delta: float = 1e-2,
) -> Tensor:
    """Finite-difference SSM (Pang et al. 2020, eq. 9): two network evaluations, no double backward.

    vᵀ∇(vᵀs) ≈ [vᵀs(z + hv) − vᵀs(z − hv)]/(2h) and ½‖s(z)‖² ≈ ¼(‖s(z + hv)‖² + ‖s(z − hv)‖²),
    both with O(h²) error, so with the same t, z, v this tends to `ssm_loss` as δ → 0. The step
    h = δ σ_t is relative to the noise level, the scale on which the score of p(z_t) varies
    (an absolute step would be many σ_t wide near the data). Both evaluations go through the
    network as one batch of 2B.
    """
    if delta <= 0:
        raise ValueError(f"fd_ssm_loss: delta must be positive, got {delta}")
    target, t, z, sigma, v = _ssm_setup(
        x0, target_mask, schedule, generator, antithetic, projection
    )
    b = x0.shape[0]
    step = delta * sigma  # (B, 1, 1)
    z_pm = torch.stack([z + step * v, z - step * v], dim=1).reshape(
        2 * b, *z.shape[1:]
    )  # (2B, K, L)
    eps_hat = eps_model(z_pm, t.repeat_interleave(2), cond.repeat(2)).reshape(b, 2, *z.shape[1:])
    score = torch.where(target[:, None], eps_to_score(eps_hat, sigma[:, None]), 0.0)  # (B, 2, K, L)
    vs = (v[:, None] * score).flatten(2).sum(2)  # (B, 2)
    div = (vs[:, 0] - vs[:, 1]) / (2.0 * step.flatten())
    sq = 0.25 * score.pow(2).flatten(1).sum(1)
    return _normalise(sigma.flatten() ** 2 * (div + sq), target)


OBJECTIVES: Final[dict[str, Objective]] = {
    "dsm_simple": partial(dsm_loss, weighting="simple"),
    "dsm_elbo": partial(dsm_loss, weighting="elbo"),
    "dsm_min_snr": partial(dsm_loss, weighting="min_snr"),
    "dsm_lognormal": partial(dsm_loss, weighting="lognormal"),
    "ssm": ssm_loss,
    "fd_ssm": fd_ssm_loss,
}


def get_objective(name: str) -> Objective:
    """The training objective registered under `name`; unknown names list the valid ones."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown training objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


__all__ = [
    "LOGNORMAL_LOGSNR",
    "MIN_SNR_GAMMA",
    "OBJECTIVES",
    "Objective",
    "TimeSample",
    "dsm_loss",
    "dsm_terms",
    "fd_ssm_loss",
    "gamma_uniform_time",
    "get_objective",
    "lognormal_time",
    "noisy",
    "per_window_sum",
    "schedule_endpoints",
    "ssm_loss",
    "uniform_times",
]
