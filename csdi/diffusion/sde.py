"""The variance-preserving forward SDE of a noise schedule and its plug-in reverse processes.

Forward (Song et al. 2021, eq. 5; VDM appendix): dz = f(t) z dt + g(t) dW on t ∈ [0, 1], with
f(t) = −½ σ²(t) γ'(t) and g²(t) = σ²(t) γ'(t), so that q(z_t | x) = N(α_t x, σ_t² I).

Plug-in reverse family (Huang et al. 2021; Song et al. 2021, eq. 6 and 13), for λ ∈ [0, 1]:
    dz = [f(t) z − (1 − λ/2) g²(t) s_θ(z, t)] dt + √(1 − λ) g(t) dW̄,    t from 1 down to 0;
λ = 0 is the reverse-time SDE, λ = 1 the probability-flow ODE. The score is s_θ = −ε̂_θ/σ_t.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from torch import Tensor

from csdi.diffusion.parameterization import eps_to_score
from csdi.diffusion.schedule import NoiseSchedule

EpsFn = Callable[[Tensor, Tensor], Tensor]
"""ε̂(z_t (N, K, L), t (N,)) → (N, K, L) with the conditioning already bound."""


class VPSDE:
    """Forward SDE of a variance-preserving schedule, named as in score_sde's `sde_lib`."""

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule

    def f(self, t: Tensor) -> Tensor:
        """Drift coefficient f(t) = −½ σ²(t) γ'(t), same shape as t."""
        return self.schedule.f(t)

    def g2(self, t: Tensor) -> Tensor:
        """Squared diffusion coefficient g²(t) = σ²(t) γ'(t), same shape as t."""
        return self.schedule.g2(t)

    def reverse(self, eps_fn: EpsFn, target: Tensor, lam: float = 0.0) -> ReverseSDE:
        """The plug-in reverse process for ε̂ = `eps_fn`, as a torchsde SDE in reversed time."""
        return ReverseSDE(self, eps_fn, target, lam=lam)


class ReverseSDE:
    """torchsde form of the plug-in reverse process, run forward in s = 1 − t from s = 0.

    The state y is flattened to (N, K·L) with N = B·S; `target` (N, K, L) is 1 on the entries that
    evolve. On the others (cond entries) drift and diffusion are 0, so they keep their initial
    value; the network sees them clean through the conditioning bound into `eps_fn`. In s,
        dy = −[f(t) y − (1 − λ/2) g²(t) s_θ(y, t)] ds + √(1 − λ) g(t) dW_s,   t = 1 − s.
    """

    noise_type: Final = "diagonal"
    sde_type: Final = "ito"

    def __init__(self, sde: VPSDE, eps_fn: EpsFn, target: Tensor, lam: float = 0.0):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"plug-in reverse SDE needs lam in [0, 1], got {lam}")
        self.sde = sde
        self.eps_fn = eps_fn
        self.shape = target.shape  # (N, K, L)
        self.target = target.reshape(target.shape[0], -1)  # (N, K·L)
        self.lam = lam
        self._last: tuple[Tensor, Tensor, Tensor] | None = None  # (s, y, drift)

    def _t(self, s: Tensor, y: Tensor) -> Tensor:
        return (1.0 - s).to(y.dtype).reshape(())

    def f(self, s: Tensor, y: Tensor) -> Tensor:
        """Drift in reversed time; one network evaluation.

        torchsde calls f(s₀, y₀) twice (its shape check, then the first step): a repeat call with
        the same state object at the same time returns the stored drift instead of a new call.
        """
        if self._last is not None and self._last[1] is y and bool(self._last[0] == s):
            return self._last[2]
        t = self._t(s, y)
        z = y.reshape(self.shape)  # (N, K, L)
        eps = self.eps_fn(z, t.expand(z.shape[0]))
        _, sigma = self.sde.schedule.alpha_sigma(t)
        score = eps_to_score(eps, sigma).reshape(y.shape)  # (N, K·L)
        drift = self.sde.f(t) * y - (1.0 - 0.5 * self.lam) * self.sde.g2(t) * score
        out = -drift * self.target
        self._last = (s, y, out)
        return out

    def g(self, s: Tensor, y: Tensor) -> Tensor:
        """Diagonal diffusion √(1 − λ) g(t) on target entries, (N, K·L); no network call."""
        t = self._t(s, y)
        return ((1.0 - self.lam) * self.sde.g2(t)).clamp_min(0.0).sqrt() * self.target
