"""Shared fixtures: a tiny experiment configuration that trains in seconds on a CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csdi.config import ExperimentConfig, load_config

TINY = [
    "model.channels=16",
    "model.n_heads=2",
    "model.n_layers=1",
    "model.diffusion_embedding_dim=16",
    "model.time_embedding_dim=16",
    "model.feature_embedding_dim=4",
    "model.ff_dim=16",
    "train.epochs=2",
    "train.batch_size=8",
    "train.device=cpu",
    "sampling.n_samples=4",
    "sampling.steps=5",
]


@pytest.fixture
def tiny_config(tmp_path) -> ExperimentConfig:
    return load_config(None, [*TINY, f"output_dir={tmp_path / 'model'}", "name=tiny"])


def sine_frame_values(n_rows: int, n_features: int, missing: float, seed: int) -> np.ndarray:
    """(T, K) smooth series with a `missing` fraction of NaN: small data a test makes itself."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows)[:, None]
    values = np.sin(t / 5.0 + np.arange(n_features)) + 0.1 * rng.standard_normal(
        (n_rows, n_features)
    )
    values[rng.random(values.shape) < missing] = np.nan
    return values


@pytest.fixture
def eager_compile(monkeypatch) -> list[object]:
    """torch.compile through dynamo's eager backend (graphs captured, no code generated: a
    test stays short); the list collects the modules compiled."""
    compiled: list[object] = []
    real = torch.compile

    def compile_eagerly(model, **kwargs):  # type: ignore[no-untyped-def]
        compiled.append(model)
        return real(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", compile_eagerly)
    return compiled
