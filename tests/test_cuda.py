"""The same code paths on a CUDA GPU: every draw on its generator's device, every time grid on
the schedule's device, resume across devices. Skipped, saying why, where no GPU is present; the
CPU halves of these paths are tested in test_imputer.py, test_training.py and the sampler tests.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from csdi.imputer import Imputer
from tests.conftest import sine_frame_values

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]


def _data() -> np.ndarray:
    return sine_frame_values(24 * 12, 3, 0.3, seed=0).reshape(24, 12, 3)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "ode", "sde", "dpm_solver"])
@pytest.mark.parametrize("grid", ["uniform", "logsnr"])
def test_every_sampler_and_grid_runs_on_the_gpu(tiny_config, sampler: str, grid: str) -> None:
    cfg = replace(tiny_config, train=replace(tiny_config.train, device="cuda"))
    imputer = Imputer(cfg).fit(_data(), progress=False)
    out = imputer.impute(_data()[:3], n_samples=4, sampler=sampler, steps=4, time_grid=grid)
    assert np.isfinite(out.samples).all()
    again = imputer.impute(_data()[:3], n_samples=4, sampler=sampler, steps=4, time_grid=grid)
    if sampler != "sde":  # per-window streams: the same seed, the same samples
        np.testing.assert_array_equal(out.samples, again.samples)


def test_cpu_checkpoint_resumes_on_the_gpu(tiny_config, tmp_path) -> None:
    cpu = replace(tiny_config, train=replace(tiny_config.train, device="cpu", epochs=1))
    Imputer(cpu).fit(_data(), output_dir=tmp_path / "m", progress=False)
    gpu = replace(tiny_config, train=replace(tiny_config.train, device="cuda", epochs=2))
    imputer = Imputer(gpu).fit(_data(), output_dir=tmp_path / "m", resume=True, progress=False)
    assert imputer.history is not None and len(imputer.history.epochs) == 2
