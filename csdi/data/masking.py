"""Training masks: which observed entries the model is given (`cond`) and which it must produce.

All tensors are in model layout (B, K, L); `observed` may be bool or float 0/1 and the returned
`cond` has its dtype and device, with cond ⊆ observed always. Randomness comes only from the
generator, drawn on its own device (so a CPU generator can drive masks of data on a GPU).
Strategies follow CSDI (Tashiro et al. 2021, `get_randmask` / `get_hist_mask`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def _rand(shape: tuple[int, ...] | torch.Size, generator: torch.Generator) -> Tensor:
    """U(0, 1) draws on the generator's own device (a CPU generator may drive GPU masks)."""
    return torch.rand(shape, generator=generator, device=generator.device)


def random_mask(observed: Tensor, generator: torch.Generator) -> Tensor:
    """Per window draw r ~ U(0, 1) and hide round(r · n_obs) observed entries at random."""
    b = observed.shape[0]
    obs = observed.reshape(b, -1).bool()  # (B, K·L)
    ratio = _rand((b,), generator).to(observed.device)
    n_hide = torch.round(obs.sum(1) * ratio).long()  # (B,)
    scores = _rand(obs.shape, generator).to(observed.device)
    scores = torch.where(obs, scores, torch.full_like(scores, -1.0))  # unobserved rank last
    order = scores.argsort(dim=1, descending=True)
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(obs.shape[1], device=obs.device).expand_as(order)
    )  # rank[i, j]: position of entry j in window i's descending order
    cond = obs & (rank >= n_hide[:, None])
    return cond.reshape(observed.shape).to(observed.dtype)


def historical_mask(
    observed: Tensor, patterns: Tensor | None, generator: torch.Generator
) -> Tensor:
    """cond = observed & the observed pattern of another window (a real missingness pattern).

    patterns: (P, K, L) patterns to draw from uniformly (e.g. windows of the dataset's missing
    file); None uses the batch itself, each window paired with the previous one as CSDI does.
    """
    obs = observed.bool()
    if patterns is None:
        other = obs.roll(1, dims=0)  # window i takes window i−1's pattern
    else:
        if patterns.shape[1:] != observed.shape[1:]:
            raise ValueError(
                f"patterns must be (P, {', '.join(map(str, observed.shape[1:]))}); "
                f"got {tuple(patterns.shape)}"
            )
        pick = torch.randint(
            patterns.shape[0], (observed.shape[0],), generator=generator, device=generator.device
        )
        other = patterns[pick.to(patterns.device)].bool().to(observed.device)
    return (obs & other).to(observed.dtype)


def mix_mask(observed: Tensor, patterns: Tensor | None, generator: torch.Generator) -> Tensor:
    """Per window, with probability ½ the random mask, else the historical mask (CSDI "mix")."""
    rand = random_mask(observed, generator)
    hist = historical_mask(observed, patterns, generator)
    coin = _rand((observed.shape[0],), generator).to(observed.device) < 0.5
    return torch.where(coin[:, None, None], rand, hist)


def forecast_mask(observed: Tensor, horizon: int) -> Tensor:
    """Hide the last `horizon` steps: cond = observed on steps [0, L − H) (deterministic)."""
    length = observed.shape[-1]
    if not 1 <= horizon < length:
        raise ValueError(f"horizon must be in [1, {length - 1}] for windows of {length} steps")
    cond = observed.clone()
    cond[..., length - horizon :] = 0
    return cond


def forecast_mix_mask(observed: Tensor, horizon: int, generator: torch.Generator) -> Tensor:
    """Per window, with probability ½ the forecast mask, else the random mask: a forecaster that
    also learns to impute gaps inside the history (the random half sees every position hidden)."""
    rand = random_mask(observed, generator)
    coin = _rand((observed.shape[0],), generator).to(observed.device) < 0.5
    return torch.where(coin[:, None, None], forecast_mask(observed, horizon), rand)


MASKS: dict[str, Callable[..., Tensor]] = {
    "random": random_mask,
    "historical": historical_mask,
    "mix": mix_mask,
    "forecast": forecast_mask,
    "forecast_mix": forecast_mix_mask,
}


def make_cond_mask(
    strategy: str,
    observed: Tensor,
    generator: torch.Generator,
    *,
    patterns: Tensor | None = None,
    horizon: int | None = None,
) -> Tensor:
    """cond mask (B, K, L) of the named strategy; each takes only the arguments it uses
    (`patterns` for historical/mix, `horizon` for forecast/forecast_mix), so one call site
    serves all."""
    if strategy not in MASKS:
        raise ValueError(f"unknown mask strategy {strategy!r}; choose one of {sorted(MASKS)}")
    if strategy in ("forecast", "forecast_mix"):
        if horizon is None:
            raise ValueError(f"the {strategy} mask needs a horizon")
        if strategy == "forecast_mix":
            return forecast_mix_mask(observed, horizon, generator)
        return forecast_mask(observed, horizon)
    if strategy == "random":
        return random_mask(observed, generator)
    return MASKS[strategy](observed, patterns, generator)
