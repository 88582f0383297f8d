"""x̂₀ clipping: the wrapped predictor's implied x̂₀ lies in the bounds, and a sampler driven
far outside them returns samples inside."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from csdi.diffusion.bounds import ClippedPredictor, clip_targets
from csdi.diffusion.conditioning import Conditioning
from csdi.diffusion.parameterization import eps_to_x0
from csdi.diffusion.samplers import SAMPLERS, sample
from csdi.diffusion.schedule import get_schedule

LOW = torch.tensor([-1.0, 0.0])
HIGH = torch.tensor([1.0, 5.0])


def runaway(z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
    """A predictor whose x̂₀ is ≈ −100·z (a model extrapolating wildly)."""
    return 50.0 * z_t


def test_clipped_predictor_implies_x0_inside_bounds_and_leaves_inside_alone() -> None:
    schedule = get_schedule("csdi_quad")
    clipped = ClippedPredictor(runaway, schedule, LOW, HIGH)
    cond = Conditioning(x=torch.zeros(4, 2, 6), mask=torch.zeros(4, 2, 6))
    z = torch.randn(4, 2, 6, generator=torch.Generator().manual_seed(0))
    t = torch.full((4,), 0.4)
    alpha, sigma = schedule.alpha_sigma(t)
    x0 = eps_to_x0(z, clipped(z, t, cond), alpha[:, None, None], sigma[:, None, None])
    assert (x0 >= LOW[None, :, None] - 1e-5).all() and (x0 <= HIGH[None, :, None] + 1e-5).all()

    def tame(z_t: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        return torch.zeros_like(z_t)  # x̂₀ = z/α, inside for small z

    small = 0.01 * z
    wide = ClippedPredictor(tame, schedule, torch.full((2,), -9.0), torch.full((2,), 9.0))
    torch.testing.assert_close(wide(small, t, cond), tame(small, t, cond), atol=1e-5, rtol=0)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_stays_inside_the_bounds(sampler: str) -> None:
    """Conditioning values far beyond the range and a runaway model: every sample of every
    target entry stays inside the bounds; the given entries are returned exactly."""
    schedule = get_schedule("csdi_quad")
    gen = torch.Generator().manual_seed(1)
    mask = (torch.rand(3, 2, 8, generator=gen) < 0.5).float()
    x = 1000.0 * torch.randn(3, 2, 8, generator=gen) * mask  # far outside [LOW, HIGH]
    cond = Conditioning(x=x, mask=mask)
    out = sample(
        ClippedPredictor(runaway, schedule, LOW, HIGH),
        cond,
        schedule,
        sampler=sampler,
        steps=8,
        n_samples=5,
        generator=gen,
    )  # (B, S, K, L)
    given = mask[:, None].bool().expand_as(out)
    target = out[~given].reshape(-1)
    k_of = torch.arange(2)[None, None, :, None].expand_as(out)[~given]
    assert torch.isfinite(target).all()
    assert (target >= LOW[k_of] - 1e-4).all() and (target <= HIGH[k_of] + 1e-4).all()
    assert torch.equal(out[given], x[:, None].expand_as(out)[given])


def test_clip_targets_clips_only_the_targets() -> None:
    x = torch.tensor([[[-5.0, 0.5, 7.0], [-2.0, 3.0, 9.0]]])  # (1, K=2, L=3)
    given = torch.tensor([[[True, False, False], [False, False, True]]])
    out = clip_targets(x, given, LOW, HIGH)
    assert out.tolist() == [[[-5.0, 0.5, 1.0], [0.0, 3.0, 9.0]]]
