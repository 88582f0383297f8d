"""Training mask strategies: invariants, the U(0,1) hidden fraction, determinism."""

from __future__ import annotations

import pytest
import torch

from csdi.data.masking import (
    MASKS,
    forecast_mask,
    historical_mask,
    make_cond_mask,
    mix_mask,
    random_mask,
)


def _observed(seed: int, shape: tuple[int, int, int] = (64, 5, 20), p: float = 0.7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < p


@pytest.mark.parametrize("strategy", ["random", "historical", "mix"])
def test_cond_is_subset_of_observed_and_deterministic(strategy: str) -> None:
    observed = _observed(0)
    patterns = _observed(1, (10, 5, 20), 0.5)
    masks = [
        make_cond_mask(strategy, observed, torch.Generator().manual_seed(s), patterns=patterns)
        for s in (7, 7, 8)
    ]
    assert masks[0].dtype == observed.dtype and masks[0].shape == observed.shape
    assert not (masks[0] & ~observed).any()
    assert torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], masks[2])


def test_random_mask_hides_round_ratio_and_ratio_is_uniform() -> None:
    observed = torch.ones(4000, 4, 25)  # float input, 100 observed entries per window
    cond = random_mask(observed, torch.Generator().manual_seed(0))
    assert cond.dtype == observed.dtype
    hidden = (observed - cond).sum((1, 2)) / 100.0  # hidden fraction per window, round(100 r)/100
    # U(0,1) deciles hold 400 ± 19 (binomial sd) windows each; 5 sd tolerance
    counts = torch.histc(hidden.clamp(0, 0.999), bins=10, min=0.0, max=1.0)
    assert ((counts - 400).abs() < 5 * 19).all(), counts
    assert abs(hidden.mean().item() - 0.5) < 5 * (1 / 12 / 4000) ** 0.5
    # which entries are hidden is uniform too: every position hidden ≈ half the time
    per_pos = (observed - cond).mean(0)
    assert ((per_pos - 0.5).abs() < 5 * (0.25 / 4000) ** 0.5 + 0.01).all()


def test_random_mask_with_partial_observation_counts() -> None:
    observed = _observed(3, (200, 3, 10), 0.4)
    cond = random_mask(observed, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    ratio = torch.rand(200, generator=g)
    n_obs = observed.sum((1, 2))
    expected_hidden = torch.round(n_obs * ratio)
    assert torch.equal((observed & ~cond).sum((1, 2)).float(), expected_hidden)


def test_historical_mask_uses_a_pattern_from_the_pool() -> None:
    observed = torch.ones(50, 2, 6, dtype=torch.bool)
    patterns = _observed(4, (3, 2, 6), 0.5)
    cond = historical_mask(observed, patterns, torch.Generator().manual_seed(0))
    for row in cond:  # fully observed input: cond equals one of the patterns exactly
        assert any(torch.equal(row, p) for p in patterns)
    # without a pool each window takes the previous window's pattern (CSDI's i − 1)
    obs = _observed(5, (4, 2, 6))
    cond = historical_mask(obs, None, torch.Generator())
    assert torch.equal(cond[1], obs[1] & obs[0]) and torch.equal(cond[0], obs[0] & obs[3])
    with pytest.raises(ValueError, match="patterns must be"):
        historical_mask(observed, patterns[:, :, :3], torch.Generator())


def test_mix_mask_is_half_random_half_historical() -> None:
    observed = torch.ones(2000, 2, 10, dtype=torch.bool)
    patterns = torch.zeros(1, 2, 10, dtype=torch.bool)  # historical ⇒ cond all False
    cond = mix_mask(observed, patterns, torch.Generator().manual_seed(0))
    # a random window hides round(20 r) entries, so it is all-False only if r < 1/40
    share_empty = (~cond.flatten(1).any(1)).float().mean().item()
    expected = 0.5 + 0.5 / 40
    assert abs(share_empty - expected) < 5 * (expected * (1 - expected) / 2000) ** 0.5


def test_forecast_mask_hides_exactly_the_last_steps() -> None:
    observed = _observed(6, (8, 3, 12))
    cond = make_cond_mask("forecast", observed, torch.Generator(), horizon=4)
    assert torch.equal(cond[..., :8], observed[..., :8])
    assert not cond[..., 8:].any()
    assert torch.equal(forecast_mask(observed, 4), cond)
    with pytest.raises(ValueError, match="horizon must be in"):
        forecast_mask(observed, 12)


def test_unknown_strategy_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown mask strategy 'rnd'.*'random'"):
        make_cond_mask("rnd", _observed(0), torch.Generator())
    assert set(MASKS) == {"random", "historical", "mix", "forecast", "forecast_mix"}


def test_forecast_mix_is_forecast_or_random_per_window() -> None:
    """Each window gets exactly the forecast mask or exactly the random mask (same generator
    draws), about half each; a horizon is required."""
    observed = _observed(9, (2000, 3, 12))
    cond = make_cond_mask("forecast_mix", observed, torch.Generator().manual_seed(3), horizon=4)
    rand = random_mask(observed, torch.Generator().manual_seed(3))  # the first draws it makes
    fc = forecast_mask(observed, 4)
    is_fc = (cond == fc).flatten(1).all(1)
    is_rand = (cond == rand).flatten(1).all(1)
    assert bool((is_fc | is_rand).all())
    share = is_fc.float().mean().item()
    assert abs(share - 0.5) < 5 * (0.25 / 2000) ** 0.5  # (a window can match both; rare here)
    assert not (cond & ~observed).any()
    with pytest.raises(ValueError, match="forecast_mix mask needs a horizon"):
        make_cond_mask("forecast_mix", observed, torch.Generator())
