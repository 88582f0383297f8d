"""Evidence lower bound of the plug-in reverse SDE on the target values, two ways.

Both functions return the NEGATIVE ELBO, an upper bound on −log p_θ(x_T | x_C), per window (B,)
and in nats per target value (each window's sum divided by its own number of target entries).
It bounds the likelihood of exactly the target entries when target_mask = 1 − cond.mask (the
inference setting); with unobserved non-cond entries (training) it is the same surrogate evaluated
on the observed targets only. Put the network in eval mode first (dropout would add noise to ε̂).

Notation: γ₀ = γ(0), γ₁ = γ(1), α² = sigmoid(−γ), σ² = sigmoid(γ), n = number of target entries,
q(z_t | x) = N(α_t x, σ_t² I), forward SDE dz = f z dt + g dW with f = −½σ²γ', g² = σ²γ'.

`elbo` — VDM's decomposition (Kingma et al. 2021, eqs. 11–17):
    −log p(x) ≤ E_q[−log p(x | z₀)] + KL(q(z₁|x) ‖ N(0, I)) + ½ ∫₀¹ γ'(t) E‖ε − ε̂_θ(z_t, t)‖² dt,
with the continuous Gaussian decoder p(x | z₀) = N(x; z₀/α₀, σ₀²/α₀²): since z₀/α₀ − x = e^{γ₀/2}ε,
its expected negative log-density is exactly ½(log 2π + γ₀ + 1) per entry.

`elbo_divergence` — Huang, Lim & Courville 2021 (Theorem 3, the implicit-score-matching form,
eq. 13; equivalently Song et al. 2021 "Maximum likelihood training", Theorem 1 and eq. 26).
For a generative SDE run in s = 1 − t with drift μ = g² s_θ − f z, diffusion g, and a = g s_θ,
a point z₀ has
    log p_θ(z₀) ≥ E[log N(z₁; 0, I)] − ∫₀¹ E[½‖a‖² + ∇·μ] dt     (z_t from the forward SDE at z₀).
This bounds the density of z₀ at t = 0, where σ₀ > 0. To bound the same −log p_θ(x) as `elbo`,
take the VAE bound with the same decoder and posterior q(z₀ | x) = N(α₀x, σ₀²I):
    −log p(x) ≤ E_q[−log p(x | z₀)] + E_q[log q(z₀ | x)] + E_q[−log p_θ(z₀)],
and insert the SDE bound. Since the integrand depends on z_t alone and z_t | x ~ q(z_t | x), the
negative ELBO is
    reconstruction  ½(log 2π + γ₀ + 1)                                  per entry, as in `elbo`;
    prior (boundary)  E[−log N(z₁; 0, I)] − H[q(z₀|x)] = ½Σ(α₁²x² + σ₁² − 1 − log σ₀²);
    diffusion         ∫₀¹ E_{q(z_t|x)}[½‖a‖² + ∇·μ] dt, with ∇·μ = g²∇·s_θ − f n.
The two totals are equal in expectation for every x and any s_θ: integrating by parts,
E[−s_θᵀ∇log q(z_t|x)] = E[∇·s_θ] and ½g²E‖∇log q(z_t|x)‖² = ½γ'n, while
−∫f dt = ½[softplus(γ₁) − softplus(γ₀)] and log σ² = γ − softplus(γ) make the boundary
constants match. Only `reconstruction` and `total` are comparable term by term between the two.

Time integrals are estimated with γ uniform on [γ₀, γ₁] (t = γ⁻¹(γ)), stratified per window over
the `n_time_samples` draws. In γ-time the forward SDE has f̃ = −½σ², g̃² = σ², so the divergence
form's integrand per unit γ is ½σ²‖s_θ‖² + σ²∇·s_θ + ½σ²n; ∇·s_θ is a Hutchinson estimate with
Rademacher probes (Hutchinson 1989; Grathwohl et al. 2019).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning, NoisePredictor
from csdi.diffusion.losses import (
    dsm_terms,
    gamma_uniform_time,
    noisy,
    per_window_sum,
    schedule_endpoints,
    uniform_times,
)
from csdi.diffusion.parameterization import eps_to_score
from csdi.diffusion.schedule import NoiseSchedule

_LOG_2PI: Final = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class ElboTerms:
    """Negative-ELBO terms, each (B,) in nats per target value; `total` is their sum."""

    diffusion: Tensor
    prior: Tensor
    reconstruction: Tensor
    total: Tensor


def _validate(x0: Tensor, target_mask: Tensor, n_time_samples: int) -> Tensor:
    if x0.dim() != 3 or target_mask.shape != x0.shape:
        raise ValueError(
            f"x0 must be (B, K, L) and target_mask the same shape; got {tuple(x0.shape)} and "
            f"{tuple(target_mask.shape)}"
        )
    if n_time_samples < 1:
        raise ValueError(f"n_time_samples must be at least 1, got {n_time_samples}")
    return target_mask != 0


def _stratified_uniforms(b: int, s: int, generator: torch.Generator, like: Tensor) -> Tensor:
    """(B·S,) uniforms, stratified within each window, sample-minor like `Conditioning.repeat`."""
    u = uniform_times(
        b, s, generator=generator, antithetic=True, dtype=like.dtype, device=like.device
    )
    return u.reshape(-1)  # (B, S) → (B·S,)


def elbo(
    eps_model: NoisePredictor,
    x0: Tensor,
    cond: Conditioning,
    target_mask: Tensor,
    schedule: NoiseSchedule,
    *,
    n_time_samples: int,
    generator: torch.Generator,
) -> ElboTerms:
    """VDM's negative ELBO (see the module docstring); differentiable w.r.t. model and schedule."""
    target = _validate(x0, target_mask, n_time_samples)
    b, s = x0.shape[0], n_time_samples
    n = per_window_sum(target.to(x0.dtype)).clamp_min(1.0)  # (B,)
    g0, g1 = schedule_endpoints(schedule, x0)

    # 1. RECONSTRUCTION: E_ε[−log N(x; z₀/α₀, σ₀²/α₀²)] = ½(log 2π + γ₀ + 1) per target entry
    reconstruction = (0.5 * (_LOG_2PI + g0 + 1.0)).expand(b)

    # 2. PRIOR: KL(N(α₁x, σ₁²) ‖ N(0, 1)) = ½(σ₁² + α₁²x² − 1 − log σ₁²) per target entry
    a1_2, s1_2 = torch.sigmoid(-g1), torch.sigmoid(g1)
    kl = 0.5 * (s1_2 + a1_2 * x0**2 - 1.0 - torch.nn.functional.logsigmoid(g1))
    prior = per_window_sum(torch.where(target, kl, 0.0)) / n

    # 3. DIFFUSION: ½∫γ'E‖ε − ε̂‖² dt, γ-uniform importance sampling, S draws per window
    terms = dsm_terms(
        eps_model,
        x0.repeat_interleave(s, 0),  # (B·S, K, L)
        cond.repeat(s),
        target.repeat_interleave(s, 0),
        schedule,
        _stratified_uniforms(b, s, generator, x0),
        weighting="elbo",
        gamma_uniform=True,
        generator=generator,
    )
    diffusion = terms.reshape(b, s).mean(1) / n
    return ElboTerms(
        diffusion=diffusion,
        prior=prior,
        reconstruction=reconstruction,
        total=diffusion + prior + reconstruction,
    )


def elbo_divergence(
    eps_model: NoisePredictor,
    x0: Tensor,
    cond: Conditioning,
    target_mask: Tensor,
    schedule: NoiseSchedule,
    *,
    n_time_samples: int,
    generator: torch.Generator,
    n_hutchinson: int = 1,
) -> ElboTerms:
    """Huang et al.'s divergence-form negative ELBO (module docstring); an evaluation, detached.

    Each of the S time draws per window uses `n_hutchinson` Rademacher probes of ∇·s_θ over the
    target entries (one backward pass each through the same forward pass).
    """
    target = _validate(x0, target_mask, n_time_samples)
    if n_hutchinson < 1:
        raise ValueError(f"n_hutchinson must be at least 1, got {n_hutchinson}")
    b, s = x0.shape[0], n_time_samples
    n = per_window_sum(target.to(x0.dtype)).clamp_min(1.0)  # (B,)
    with torch.no_grad():
        g0, g1 = schedule_endpoints(schedule, x0)

        # 1. RECONSTRUCTION: identical to `elbo`
        reconstruction = (0.5 * (_LOG_2PI + g0 + 1.0)).expand(b)

        # 2. PRIOR: E[−log N(z₁; 0, I)] − H[q(z₀|x)] = ½(α₁²x² + σ₁² − 1 − log σ₀²) per entry
        a1_2, s1_2 = torch.sigmoid(-g1), torch.sigmoid(g1)
        log_s0_2 = torch.nn.functional.logsigmoid(g0)
        boundary = 0.5 * (a1_2 * x0**2 + s1_2 - 1.0 - log_s0_2)
        prior = per_window_sum(torch.where(target, boundary, 0.0)) / n

        # 3. DIFFUSION: ∫E[½‖a‖² + ∇·μ]dt = (γ₁ − γ₀) E_γ[½σ²‖s‖² + σ²∇·s + ½σ²n]
        ts = gamma_uniform_time(_stratified_uniforms(b, s, generator, x0), schedule)
        xs = x0.repeat_interleave(s, 0)  # (B·S, K, L)
        ts_target = target.repeat_interleave(s, 0)
        z, _, sigma = noisy(xs, ts.gamma, generator)  # sigma (B·S, 1, 1)
        sigma2 = sigma.flatten() ** 2  # (B·S,)
        probes = [
            torch.where(
                ts_target,
                2.0 * torch.randint(0, 2, xs.shape, generator=generator, device=xs.device) - 1.0,
                0.0,
            ).to(xs.dtype)
            for _ in range(n_hutchinson)
        ]
    with torch.enable_grad():
        z.requires_grad_(True)
        eps_hat = eps_model(z, ts.t, cond.repeat(s))
        score = torch.where(ts_target, eps_to_score(eps_hat, sigma), 0.0)
        div = torch.zeros_like(sigma2)
        for k, v in enumerate(probes):
            (jv,) = torch.autograd.grad(
                (v * score).sum(), z, retain_graph=k < n_hutchinson - 1
            )  # ∇_z(vᵀs)
            div = div + per_window_sum(v * jv) / n_hutchinson
    with torch.no_grad():
        n_s = n.repeat_interleave(s)
        per_gamma = sigma2 * (0.5 * per_window_sum(score.detach() ** 2) + div + 0.5 * n_s)
        diffusion = (2.0 * ts.weight * per_gamma).reshape(b, s).mean(1) / n  # weight = ½(γ₁ − γ₀)
    total = diffusion + prior + reconstruction
    return ElboTerms(
        diffusion=diffusion.detach(),
        prior=prior,
        reconstruction=reconstruction,
        total=total.detach(),
    )
