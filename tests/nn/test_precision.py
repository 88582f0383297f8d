"""bf16 evaluation of the score network: the attention it uses, and samples that stay fp32."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from csdi.imputer import Imputer
from csdi.nn import precision as precision_module
from csdi.nn.precision import native_bf16, network_precision, resolve_precision
from csdi.nn.transformer import (
    SHORT_SEQUENCE,
    SOFTMAX_VECTOR,
    TransformerLayer,
    explicit_attention,
)
from tests.conftest import sine_frame_values


@pytest.mark.parametrize("masked", [None, "bool", "float"])
@pytest.mark.parametrize("length", [7, SOFTMAX_VECTOR])  # the spelt-out and the fused softmax
def test_explicit_attention_is_scaled_dot_product_attention(
    masked: str | None, length: int
) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(5, 2, length, 4, generator=g, dtype=torch.float64) for _ in range(3))
    mask = None
    if masked is not None:
        mask = torch.rand(5, 1, 1, length, generator=g) < 0.7
        mask[..., 0] = True  # every query sees at least one key
    if masked == "float":  # a bias per head and query-key pair, −inf on the dropped keys
        bias = torch.randn(1, 2, length, length, generator=g, dtype=torch.float64)
        mask = bias.masked_fill(~mask, float("-inf"))
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(explicit_attention(q, k, v, mask), expected)


def test_short_bf16_sequences_take_the_explicit_path_and_agree_with_fp32(monkeypatch) -> None:
    """Under bf16 autocast a feature-axis layer (S ≤ SHORT_SEQUENCE) avoids the fused CPU kernel
    and stays within bf16 rounding of the fp32 layer: relative error ≲ 2⁻⁸ per product, a few
    per cent after two residual blocks."""
    torch.manual_seed(0)
    layer = TransformerLayer(32, 2, 32, dropout=0.0).eval()
    x = torch.randn(64, SHORT_SEQUENCE, 32)
    with torch.no_grad():
        ref = layer(x)

        def fused(*args: object, **kwargs: object) -> None:
            raise AssertionError("the fused kernel was called for a short bf16 sequence")

        monkeypatch.setattr(F, "scaled_dot_product_attention", fused)
        with network_precision("bf16", x.device):
            low = layer(x)
    assert low.dtype == torch.float32  # the post-norm output (layer norm runs in fp32)
    assert float((low - ref).abs().max()) < 0.1
    assert float((low - ref).abs().mean()) < 0.01


def test_bad_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="fp32"):
        network_precision("fp16", torch.device("cpu"))


def test_bf16_imputation_is_fp32_and_close_to_fp32(tiny_config) -> None:
    """Same model, seed and windows: bf16 samples are float32 and within bf16 rounding."""
    data = sine_frame_values(24 * 12, 3, 0.3, seed=0).reshape(24, 12, 3)
    imputer = Imputer(tiny_config).fit(data, progress=False)
    fast = {"n_samples": 4, "seed": 1, "sampler": "dpm_solver", "steps": 4}
    ref = imputer.impute(data[:4], **fast).samples
    low = imputer.impute(data[:4], precision="bf16", **fast).samples
    assert np.isfinite(low).all() and not np.array_equal(low, ref)
    observed = ~np.isnan(data[:4])[:, None].repeat(4, axis=1)
    np.testing.assert_array_equal(low[observed], ref[observed])
    scale = float(np.abs(ref).max())
    assert float(np.abs(low - ref).max()) < 0.05 * scale


def test_auto_is_bf16_exactly_where_the_hardware_has_it() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="auto"):
        resolve_precision("half", cpu)


def test_bf16_without_native_support_is_one_clear_error(monkeypatch, tiny_config) -> None:
    data = sine_frame_values(24 * 12, 3, 0.3, seed=0).reshape(24, 12, 3)
    imputer = Imputer(tiny_config).fit(data, progress=False)
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: False)
    with pytest.raises(ValueError, match="no native bf16"):
        imputer.impute(data[:2], n_samples=2, steps=2, precision="bf16")
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"


@pytest.mark.skipif(not native_bf16(torch.device("cpu")), reason="this CPU has no native bf16")
def test_training_in_bf16_keeps_fp32_weights_and_a_finite_loss(tiny_config) -> None:
    cfg = replace(tiny_config, train=replace(tiny_config.train, precision="bf16"))
    data = sine_frame_values(24 * 12, 3, 0.3, seed=0).reshape(24, 12, 3)
    imputer = Imputer(cfg).fit(data, progress=False)
    assert imputer.history is not None and np.isfinite(imputer.history.train_loss).all()
    assert imputer.network is not None
    assert all(p.dtype == torch.float32 for p in imputer.network.parameters())
