"""A data-dependent prior: diffuse the residual from the interpolation, not the value.

PriorGrad (Lee et al. 2022, ICLR) replaces the N(0, I) prior of a conditional diffusion model by
N(μ(c), Σ(c)) computed from the condition, and shows that the network then has less to learn
and trains faster. Here μ is the linear interpolation in time of the conditioning values
(`linear_fill`, constant beyond the last given value) and Σ = diag(s_k²) holds one scale per
feature, the root mean square of x − μ over training targets (`residual_scale`); where a window
gives a feature no value, μ = 0 and the scale is 1 (CSDI's prior). The diffusion runs on

    u = (x − μ(c)) / s        and returns        x = μ(c) + s · u,

so every sampler, objective and bound applies unchanged to u. On smooth series, where the
interpolation is already close, u is the part still unknown at unit scale: an error ε in the
network's estimate of u costs s·ε in the data. The change of variables adds log s per target
value to the negative log-likelihood (`log_scale_per_value`).

The "gaussian" prior takes μ and the scale from a Gaussian model of each feature fitted to the
training series: a stationary process with the empirical autocovariance C_k(τ)
(`autocovariance`). Given the window's values of feature k, μ is their conditional mean
Σ_ho Σ_oo⁻¹ x_o (simple kriging) and the scale s_k·σ(l) follows the conditional standard
deviation, diag(Σ_hh − Σ_ho Σ_oo⁻¹ Σ_oh)^½, position by position (`gaussian_frame`): small next
to the given values, growing into a gap, where interpolation's residual scale is one number for
all positions. s_k is fitted so that u has unit root mean square over training targets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import torch
from torch import Tensor

from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.interpolation import linear_fill

#: Diffusion priors: "zero" is CSDI's N(0, I) on the normalised values, "interpolation" and
#: "gaussian" the residual priors of this module.
PRIOR_MEANS = ("zero", "interpolation", "gaussian")

#: The smallest conditional standard deviation of the "gaussian" prior, in normalised units.
STD_FLOOR = 1e-3

#: Eigenvalues of a feature's window covariance are kept ≥ this share of its variance.
EIGEN_FLOOR = 1e-5

#: Elements of the (rows, L, L) float64 tensors of one `gaussian_frame` pass.
FRAME_CHUNK = 2**22


@dataclass(frozen=True)
class ResidualPrior:
    """The affine frame x = μ(c) + s·u of a residual prior; scale (K,) in normalised units.

    `autocovariance` None: the "interpolation" prior. Where a window gives a feature no value at
    all, there is nothing to interpolate: μ = 0 and the scale is 1 there, CSDI's N(0, I) prior
    on that feature of that window. `autocovariance` (K, L) C_k(τ): the "gaussian" prior, μ and
    the scale per position from the conditional of the stationary Gaussian process (module
    docstring); with no value given, μ = 0 and the scale s_k·C_k(0)^½."""

    scale: Tensor
    autocovariance: Tensor | None = None

    def __post_init__(self) -> None:
        finite = bool(torch.isfinite(self.scale).all())
        if self.scale.dim() != 1 or len(self.scale) == 0 or not finite:
            raise ValueError("the residual scale must be (K,) with K > 0, finite")
        if not bool((self.scale > 0).all()):
            raise ValueError("the residual scale must be positive")
        c = self.autocovariance
        if c is not None and (
            c.dim() != 2 or c.shape[0] != len(self.scale) or not bool(torch.isfinite(c).all())
        ):
            raise ValueError("the autocovariance must be (K, L) and finite, K as the scale's")

    @cached_property
    def covariance(self) -> Tensor:
        """(K, L, L) float64: each feature's covariance over a window (`window_covariance`)."""
        assert self.autocovariance is not None
        return window_covariance(self.autocovariance)

    def attach(self, cond: Conditioning) -> Conditioning:
        """cond with its frame (μ, scale) computed once, for the many calls of one batch."""
        return replace(cond, frame=(self.mean(cond), self.scales(cond)))

    def mean(self, cond: Conditioning) -> Tensor:
        """μ(c) (N, K, L): the conditioning values where given; elsewhere their linear
        interpolation in time, or the Gaussian conditional mean (0, the feature's normalised
        mean, where a window gives none)."""
        if cond.frame is not None:
            return cond.frame[0]
        if self.autocovariance is None:
            return linear_fill(cond.x, cond.mask > 0)
        return gaussian_frame(cond.x, cond.mask > 0, self.covariance)[0]

    def scales(self, cond: Conditioning) -> Tensor:
        """(N, K, 1) s_k where window n gives feature k a value, else 1 ("interpolation");
        (N, K, L) s_k times the conditional standard deviation ("gaussian")."""
        if cond.frame is not None:
            return cond.frame[1]
        scale = self.scale.to(cond.x)[:, None]  # (K, 1)
        if self.autocovariance is None:
            given = (cond.mask > 0).any(dim=-1, keepdim=True)  # (N, K, 1)
            return torch.where(given, scale, torch.ones_like(cond.x[..., :1]))
        return scale * gaussian_frame(cond.x, cond.mask > 0, self.covariance)[1]

    def encode(self, x: Tensor, cond: Conditioning) -> Tensor:
        """u = (x − μ(c)) / s for x (N, K, L)."""
        return (x - self.mean(cond)) / self.scales(cond).to(x)

    def decode(self, u: Tensor, cond: Conditioning) -> Tensor:
        """x = μ(c) + s·u for u (N, K, L) or (N, S, K, L) (S samples of each window)."""
        mean, scale = self.mean(cond).to(u), self.scales(cond).to(u)
        if u.dim() == 4:
            mean, scale = mean[:, None], scale[:, None]
        return mean + scale * u

    def log_scale_per_value(self, target: Tensor, cond: Conditioning) -> Tensor:
        """Σ_k,l target·log s / Σ target per window (B,): the change of variables' term of
        −log p(x) − (−log p(u)) in nats per target value; target (B, K, L) 0/1."""
        log_s = torch.log(self.scales(cond).to(target)).expand_as(target)
        return (target * log_s).flatten(1).sum(1) / target.flatten(1).sum(1).clamp_min(1)

    def to(self, device: torch.device | str) -> ResidualPrior:
        c = self.autocovariance
        return ResidualPrior(self.scale.to(device), None if c is None else c.to(device))


def residual_scale(
    values: Tensor, observed: Tensor, cond_mask: Tensor, floor: float = 1e-2
) -> Tensor:
    """s (K,): the root mean square of x − μ(c) over the targets (observed, not given) of
    windows (N, K, L) that give the feature some value (elsewhere the prior keeps scale 1),
    floored at `floor` (a feature the interpolation fits exactly still gets a usable scale);
    1 where a feature has no such target at all."""
    has_given = (cond_mask > 0).any(dim=-1, keepdim=True)  # (N, K, 1)
    target = observed * (1.0 - cond_mask) * has_given
    cond = Conditioning(x=values * cond_mask, mask=cond_mask)
    residual = (values - linear_fill(cond.x, cond_mask > 0)) * target
    count = target.sum(dim=(0, 2))  # (K,)
    rms = torch.sqrt((residual**2).sum(dim=(0, 2)) / count.clamp_min(1))
    return torch.where(count > 0, rms.clamp_min(floor), torch.ones_like(rms))


def autocovariance(values: Tensor, observed: Tensor) -> Tensor:
    """C (K, L): C_k(τ) = mean of x_k(l)·x_k(l+τ) over the pairs of observed steps of windows
    (N, K, L) in normalised units (second moments about the training mean, which the scaler
    puts at 0); 0 at a lag no window observes twice."""
    length = values.shape[-1]
    x = (values * observed).to(torch.float64)
    o = observed.to(torch.float64)
    out = torch.zeros(values.shape[1], length, dtype=torch.float64, device=values.device)
    for lag in range(length):
        pairs = (o[..., : length - lag] * o[..., lag:]).sum(dim=(0, 2))  # (K,)
        moment = (x[..., : length - lag] * x[..., lag:]).sum(dim=(0, 2))
        out[:, lag] = torch.where(pairs > 0, moment / pairs.clamp_min(1), 0.0)
    return out


def window_covariance(autocov: Tensor) -> Tensor:
    """(K, L, L) float64: the Toeplitz matrices Σ_k[l, m] = C_k(|l − m|), made positive definite
    by raising their eigenvalues to `EIGEN_FLOOR`·C_k(0) (an empirical autocovariance with
    missing values need not be a valid one)."""
    c = autocov.to(torch.float64)
    length = c.shape[-1]
    steps = torch.arange(length, device=c.device)
    toeplitz = c[:, (steps[:, None] - steps[None, :]).abs()]  # (K, L, L)
    variance = c[:, :1].clamp_min(1e-6)  # (K, 1)
    eigval, eigvec = torch.linalg.eigh(toeplitz)
    eigval = torch.maximum(eigval, EIGEN_FLOOR * variance)
    sym = (eigvec * eigval[:, None, :]) @ eigvec.transpose(-1, -2)
    return (sym + sym.transpose(-1, -2)) / 2


def gaussian_frame(x: Tensor, given: Tensor, covariance: Tensor) -> tuple[Tensor, Tensor]:
    """(mean, std), each (N, K, L) in x's dtype: the conditional of x_k ~ N(0, Σ_k) given the
    `given` entries of each window and feature (simple kriging). mean = Σ_·o Σ_oo⁻¹ x_o (x
    itself where given), std = diag(Σ − Σ_·o Σ_oo⁻¹ Σ_o·)^½ floored at `STD_FLOOR`. Σ_oo is
    factored as the padded matrix o oᵀ∘Σ + diag(1 − o), whose Cholesky factor holds Σ_oo's."""
    n, k, length = x.shape
    rows = n * k
    sigma = covariance.to(device=x.device, dtype=torch.float64)
    o_all = given.reshape(rows, length).to(torch.float64)
    x_all = x.reshape(rows, length).to(torch.float64)
    feature = torch.arange(rows, device=x.device) % k
    mean = torch.empty_like(x_all)
    var = torch.empty_like(x_all)
    chunk = max(1, FRAME_CHUNK // (length * length))
    for lo in range(0, rows, chunk):
        o = o_all[lo : lo + chunk]  # (R, L)
        s = sigma[feature[lo : lo + chunk]]  # (R, L, L)
        padded = o[:, :, None] * s * o[:, None, :] + torch.diag_embed(1.0 - o)
        chol = torch.linalg.cholesky(padded)
        weights = torch.cholesky_solve((x_all[lo : lo + chunk] * o)[..., None], chol)
        mean[lo : lo + chunk] = (s @ weights)[..., 0]
        w = torch.linalg.solve_triangular(chol, o[:, :, None] * s, upper=False)  # L⁻¹ Σ_o·
        var[lo : lo + chunk] = torch.diagonal(s, dim1=-2, dim2=-1) - (w**2).sum(dim=-2)
    std = var.clamp_min(STD_FLOOR**2).sqrt()
    mean = torch.where(o_all > 0, x_all, mean)
    return mean.reshape(n, k, length).to(x.dtype), std.reshape(n, k, length).to(x.dtype)


def gaussian_scale(
    values: Tensor, observed: Tensor, cond_mask: Tensor, covariance: Tensor, floor: float = 1e-2
) -> Tensor:
    """s (K,): the root mean square of (x − μ(c))/σ(c) of the "gaussian" prior over the
    targets (observed, not given) of windows (N, K, L), floored at `floor`; 1 where a feature
    has no target."""
    target = observed * (1.0 - cond_mask)
    mean, std = gaussian_frame(values * cond_mask, cond_mask > 0, covariance)
    z2 = (((values - mean) / std) ** 2 * target).sum(dim=(0, 2))
    count = target.sum(dim=(0, 2))
    rms = torch.sqrt(z2 / count.clamp_min(1))
    return torch.where(count > 0, rms.clamp_min(floor), torch.ones_like(rms))
