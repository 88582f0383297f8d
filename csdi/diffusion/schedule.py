"""Noise schedules in terms of the negative log signal-to-noise ratio γ(t) = −log SNR(t).

Variance-preserving throughout (Kingma et al. 2021, VDM, §2):
    α²(t) = sigmoid(−γ(t)),   σ²(t) = sigmoid(γ(t)),   q(z_t | x) = N(α_t x, σ_t² I).
The forward SDE dz = f(t) z dt + g(t) dW with the same marginals has
    f(t) = −½ σ²(t) γ'(t),    g²(t) = σ²(t) γ'(t)        (Song et al. 2021; VDM appendix).

Every schedule is strictly increasing on t ∈ [0, 1] with finite endpoints γ(0) = γ_min and
γ(1) = γ_max, so σ₀ > 0 (the reconstruction term of the ELBO is finite) and σ₁ < 1.
"""

from __future__ import annotations

import math
from typing import Final

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def alpha_sigma_from_gamma(gamma: Tensor) -> tuple[Tensor, Tensor]:
    """(α, σ) = (√sigmoid(−γ), √sigmoid(γ)), elementwise: the VP marginal's coefficients."""
    return torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()


class NoiseSchedule(nn.Module):
    """Base class: subclasses implement `gamma(t)`; `dgamma_dt` falls back to autograd."""

    def gamma(self, t: Tensor) -> Tensor:
        """γ(t) = −log SNR(t), elementwise over `t` of any shape."""
        raise NotImplementedError

    def dgamma_dt(self, t: Tensor) -> Tensor:
        """γ'(t) by autograd (subclasses override with a closed form where one exists)."""
        keep_graph = torch.is_grad_enabled()  # a differentiable γ' only when the caller wants one
        with torch.enable_grad():
            t_ = t.detach().requires_grad_(True)
            g = self.gamma(t_)
            (grad,) = torch.autograd.grad(g.sum(), t_, create_graph=keep_graph)
        return grad

    def alpha2(self, t: Tensor) -> Tensor:
        """α²(t) = sigmoid(−γ(t))."""
        return torch.sigmoid(-self.gamma(t))

    def sigma2(self, t: Tensor) -> Tensor:
        """σ²(t) = sigmoid(γ(t))."""
        return torch.sigmoid(self.gamma(t))

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(α_t, σ_t), computed from one evaluation of γ."""
        return alpha_sigma_from_gamma(self.gamma(t))

    def f(self, t: Tensor) -> Tensor:
        """Drift coefficient f(t) = −½ σ²(t) γ'(t) of the forward SDE."""
        return -0.5 * self.sigma2(t) * self.dgamma_dt(t)

    def g2(self, t: Tensor) -> Tensor:
        """Squared diffusion coefficient g²(t) = σ²(t) γ'(t) of the forward SDE."""
        return self.sigma2(t) * self.dgamma_dt(t)

    @property
    def gamma_min(self) -> float:
        return float(self.gamma(torch.zeros(())).detach())

    @property
    def gamma_max(self) -> float:
        return float(self.gamma(torch.ones(())).detach())

    def t_of_gamma(self, gamma: Tensor, iters: int = 60) -> Tensor:
        """Inverse of γ by bisection (γ is strictly increasing); used to sample t with γ uniform."""
        lo = torch.zeros_like(gamma)
        hi = torch.ones_like(gamma)
        with torch.no_grad():
            for _ in range(iters):
                mid = 0.5 * (lo + hi)
                above = self.gamma(mid) > gamma
                hi = torch.where(above, mid, hi)
                lo = torch.where(above, lo, mid)
        return 0.5 * (lo + hi)


def _log_expm1(x: Tensor) -> Tensor:
    """log(exp(x) − 1), stable for small and large x."""
    return torch.where(x > 20.0, x, torch.log(torch.expm1(x.clamp_min(1e-30))))


class CSDIQuadSchedule(NoiseSchedule):
    """CSDI's quadratic schedule as a continuous γ(t).

    CSDI (Tashiro et al. 2021) uses β_n = linspace(√β_start, √β_end, N)², n = 0..N−1, and
    ᾱ_n = Π_{i≤n} (1 − β_i). We place ᾱ_n at t_{n+1} = (n + 1)/N and interpolate γ = log(1/ᾱ − 1)
    linearly between the knots (extrapolating the first segment to t = 0), so an N-step sampler on
    the grid t = k/N sees exactly CSDI's noise levels. γ'(t) is piecewise constant.
    """

    knots: Tensor  # γ at t = 0, 1/N, …, 1: (N + 1,) float64
    betas: Tensor

    def __init__(self, beta_start: float = 1e-4, beta_end: float = 0.5, num_steps: int = 50):
        super().__init__()
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64) ** 2
        nu = torch.cumsum(-torch.log1p(-betas), 0)  # −log ᾱ_n, (N,)
        gamma_knots = _log_expm1(nu)  # γ at t = 1/N .. 1
        gamma0 = 2 * gamma_knots[0] - gamma_knots[1]
        knots = torch.cat([gamma0[None], gamma_knots])  # (N + 1,) at t = 0, 1/N, .., 1
        self.num_steps: Final[int] = num_steps
        self.register_buffer("knots", knots, persistent=False)
        self.register_buffer("betas", betas, persistent=False)

    def _segment(self, t: Tensor) -> tuple[Tensor, Tensor]:
        u = t.to(torch.float64).clamp(0.0, 1.0) * self.num_steps
        idx = u.floor().clamp(max=self.num_steps - 1).long()
        return idx, u - idx

    def gamma(self, t: Tensor) -> Tensor:
        idx, frac = self._segment(t)
        k = self.knots
        out = k[idx] + frac * (k[idx + 1] - k[idx])
        return out.to(t.dtype if t.is_floating_point() else torch.get_default_dtype())

    def dgamma_dt(self, t: Tensor) -> Tensor:
        idx, _ = self._segment(t)
        slope = (self.knots[idx + 1] - self.knots[idx]) * self.num_steps
        return slope.to(t.dtype if t.is_floating_point() else torch.get_default_dtype())


class VPLinearSchedule(NoiseSchedule):
    """VP-SDE with linear β(τ) = β_min + τ(β_max − β_min) (Song et al. 2021; Huang et al. 2021).

    −log ᾱ(τ) = ν(τ) = β_min τ + ½(β_max − β_min)τ², γ = log(e^ν − 1). Time is mapped as
    τ = ε + (1 − ε)t so that γ(0) is finite (Song et al.'s likelihood cut-off ε = 1e-5); then
    f = −½β(τ)(1 − ε) and g² = β(τ)(1 − ε), i.e. β up to the constant time rescaling.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, eps: float = 1e-5):
        super().__init__()
        self.beta_min, self.beta_max, self.eps = beta_min, beta_max, eps

    def _tau(self, t: Tensor) -> Tensor:
        return self.eps + (1.0 - self.eps) * t

    def _nu(self, tau: Tensor) -> Tensor:
        return self.beta_min * tau + 0.5 * (self.beta_max - self.beta_min) * tau**2

    def beta(self, t: Tensor) -> Tensor:
        """β(τ(t)) of the original parameterisation."""
        return self.beta_min + self._tau(t) * (self.beta_max - self.beta_min)

    def gamma(self, t: Tensor) -> Tensor:
        return _log_expm1(self._nu(self._tau(t)))

    def dgamma_dt(self, t: Tensor) -> Tensor:
        # dγ/dν = e^ν/(e^ν − 1) = 1/(1 − e^−ν); dν/dt = β(τ)(1 − ε)
        nu = self._nu(self._tau(t))
        return self.beta(t) * (1.0 - self.eps) / (-torch.expm1(-nu))


class CosineSchedule(NoiseSchedule):
    """Cosine schedule (Nichol & Dhariwal 2021) in log-SNR form, truncated to [γ_min, γ_max].

    SNR(t) = 1/tan²(a t + b), i.e. γ(t) = 2 log tan(a t + b), with b = atan(e^{γ_min/2}) and
    a = atan(e^{γ_max/2}) − b (Kingma et al. 2023; Hoogeboom et al. 2023). γ' = 4a / sin(2(at + b)).
    """

    def __init__(self, gamma_min: float = -13.3, gamma_max: float = 10.0):
        super().__init__()
        self.b = math.atan(math.exp(gamma_min / 2))
        self.a = math.atan(math.exp(gamma_max / 2)) - self.b

    def gamma(self, t: Tensor) -> Tensor:
        return 2.0 * torch.log(torch.tan(self.a * t + self.b))

    def dgamma_dt(self, t: Tensor) -> Tensor:
        return 4.0 * self.a / torch.sin(2.0 * (self.a * t + self.b))


class _PositiveLinear(nn.Linear):
    """Linear layer with non-negative weights (softplus), so the map is monotone in its input."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, F.softplus(self.weight), self.bias)


class LearnedSchedule(NoiseSchedule):
    """VDM's learned monotone schedule (Kingma et al. 2021, Appendix H).

    γ̃(t) = l₁(t) + l₃(φ(l₂(l₁(t)))) with non-negative weights and φ = sigmoid, so γ̃ is
    monotone; γ(t) = γ₀ + (γ₁ − γ₀)(γ̃(t) − γ̃(0))/(γ̃(1) − γ̃(0)) pins the endpoints, and γ₀, γ₁
    are trainable too. γ' comes from autograd.
    """

    def __init__(self, gamma_0: float = -13.3, gamma_1: float = 5.0, hidden: int = 1024):
        super().__init__()
        self.l1 = _PositiveLinear(1, 1)
        self.l2 = _PositiveLinear(1, hidden)
        self.l3 = _PositiveLinear(hidden, 1)
        self.gamma_0 = nn.Parameter(torch.tensor(float(gamma_0)))
        self.gamma_1 = nn.Parameter(torch.tensor(float(gamma_1)))

    def _gamma_tilde(self, t: Tensor) -> Tensor:
        x = t.reshape(-1, 1)  # (M, 1)
        h = self.l1(x)
        out = h + self.l3(torch.sigmoid(self.l2(h)))
        return out.reshape(t.shape)

    def gamma(self, t: Tensor) -> Tensor:
        # endpoints evaluated in the same call as t, so γ(0) = γ₀ and γ(1) = γ₁ to rounding
        ends = torch.tensor([0.0, 1.0], dtype=self.gamma_0.dtype, device=t.device)
        both = self._gamma_tilde(torch.cat([ends, t.reshape(-1).to(self.gamma_0.dtype)]))
        g0, g1, g_tilde = both[0], both[1], both[2:].reshape(t.shape)
        # min gap keeps the normalisation finite even if all weights collapse
        frac = (g_tilde - g0) / (g1 - g0).clamp_min(1e-8)
        return (self.gamma_0 + (self.gamma_1 - self.gamma_0) * frac).to(t.dtype)


SCHEDULES: Final = {
    "csdi_quad": CSDIQuadSchedule,
    "vp_linear": VPLinearSchedule,
    "cosine": CosineSchedule,
    "learned": LearnedSchedule,
}


def get_schedule(name: str, **kwargs: float) -> NoiseSchedule:
    """Build a schedule by name; unknown names raise with the list of valid ones."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[name](**kwargs)
