"""Tiny fit → impute → save → load loops of the task API (PyPOTS-style contract tests)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from csdi import checkpoint
from csdi.checkpoint import CheckpointError
from csdi.data.scaling import fit_sensor_scaler
from csdi.imputer import Imputer, InputError, relative_time, windows_from_array
from tests.conftest import sine_frame_values


def _windows(n: int, length: int, k: int, missing: float, seed: int) -> np.ndarray:
    values = sine_frame_values(n * length, k, missing, seed)
    return values.reshape(n, length, k)


def test_fit_impute_save_load(tiny_config, tmp_path) -> None:
    data = _windows(24, 12, 3, 0.3, seed=0)
    imputer = Imputer(tiny_config).fit(data, output_dir=tmp_path / "m", progress=False)
    assert imputer.history is not None and len(imputer.history.epochs) == 2

    result = imputer.impute(data[:5], n_samples=6, seed=1)
    assert result.samples.shape == (5, 6, 12, 3)
    assert np.isfinite(result.samples).all()
    observed = ~np.isnan(data[:5])
    # observed entries come back bit-exact in every sample
    assert np.array_equal(result.samples[:, 2][observed], data[:5][observed])
    assert result.median.shape == (5, 12, 3) and result.quantiles.shape == (5, 5, 12, 3)
    assert np.all(np.diff(result.quantiles, axis=0) >= 0)  # quantiles ordered

    imputer.save(tmp_path / "saved")
    again = Imputer.load(tmp_path / "saved").impute(data[:5], n_samples=6, seed=1)
    np.testing.assert_array_equal(again.samples, result.samples)  # same weights, same seed
    other_seed = imputer.impute(data[:5], n_samples=6, seed=2)
    assert not np.array_equal(other_seed.samples, result.samples)
    # the sampler's time grid reaches the sampler: same seed, another grid, other samples
    fast = {"n_samples": 4, "seed": 1, "sampler": "dpm_solver", "steps": 4}
    uniform = imputer.impute(data[:2], **fast).samples
    logsnr = imputer.impute(data[:2], time_grid="logsnr", **fast).samples
    assert np.isfinite(logsnr).all() and not np.array_equal(uniform, logsnr)


def test_frame_is_imputed_window_by_window_and_stitched(tiny_config) -> None:
    cfg = replace(tiny_config, data=replace(tiny_config.data, window=16))
    frame = pd.DataFrame(sine_frame_values(100, 2, 0.25, seed=3), columns=["a", "b"])
    imputer = Imputer(cfg).fit(frame, progress=False)
    result = imputer.impute(frame, n_samples=3, seed=0)
    assert result.samples.shape == (1, 3, 100, 2)  # back on the input's rows
    assert np.isfinite(result.samples).all()
    obs = frame.notna().to_numpy()
    assert np.array_equal(result.median[0][obs], frame.to_numpy()[obs])
    with pytest.raises(InputError, match=r"lacks the feature column\(s\) .*\['b'\]$"):
        imputer.impute(frame.rename(columns={"b": "c"}))
    # a near-miss (case, spaces) is named, so the user knows what to rename
    with pytest.raises(InputError, match=r"the input has 'B ' for 'b': rename to match"):
        imputer.impute(frame.rename(columns={"b": "B "}))


def test_bad_array_input(tiny_config) -> None:
    imputer = Imputer(tiny_config)
    data = _windows(8, 12, 2, 0.2, seed=1)
    data[1, 3, 0] = np.inf
    with pytest.raises(InputError, match="infinite value at window 1, step 3, feature 0"):
        imputer.fit(data, progress=False)
    with pytest.raises(InputError, match=r"shaped \(N, L, K\)"):
        imputer.fit(np.zeros((4, 4)), progress=False)
    with pytest.raises(RuntimeError, match="not fitted"):
        imputer.impute(_windows(2, 12, 2, 0.2, seed=1))


def test_resume_continues_exactly(tiny_config, tmp_path) -> None:
    """2 epochs (4 steps) in one go == 1 step, stopped by the wall-time budget in the middle of
    the first epoch, then resumed for the other 3: the final weights, EMA and optimizer state in
    `last.pt` agree to float precision. (The kept best-validation weights may differ: the rounds
    they are chosen among end at other steps.)"""
    data = _windows(16, 12, 2, 0.3, seed=4)
    Imputer(tiny_config).fit(data, output_dir=tmp_path / "full", progress=False)

    one = replace(tiny_config, train=replace(tiny_config.train, epochs=2, max_minutes=1e-9))
    split = Imputer(one).fit(data, output_dir=tmp_path / "split", progress=False)
    assert split.history is not None and split.history.steps == [1]  # stopped mid-epoch

    w = replace(windows_from_array(data), cond=None)
    scaler = fit_sensor_scaler(w.values, w.observed)
    w = relative_time(replace(w, values=scaler.transform(w.values, w.observed)))
    resumed = Imputer(tiny_config)
    resumed.fit_windows(w, None, scaler, output_dir=tmp_path / "split", resume=True, progress=False)
    assert resumed.history is not None and resumed.history.steps == [1, 2, 4]
    a, b = (checkpoint.load(tmp_path / run / "last.pt") for run in ("full", "split"))
    assert a["step"] == b["step"] == 4
    for part in ("network", "ema"):
        for name, value in a[part].items():
            np.testing.assert_allclose(
                value.numpy(), b[part][name].numpy(), atol=1e-6, err_msg=f"{part}.{name}"
            )


def test_model_directory_errors(tiny_config, tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        Imputer.load(tmp_path)
    data = _windows(8, 12, 2, 0.2, seed=5)
    Imputer(tiny_config).fit(data, progress=False).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["format_version"] = 999
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="written by csdi model format 999"):
        Imputer.load(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a csdi model's config"):
        Imputer.load(tmp_path / "m")
    del meta["scaler"]
    meta["format_version"] = 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"not a csdi model's config \(KeyError: 'scaler'\)"):
        Imputer.load(tmp_path / "m")


def test_bounds_hold_the_validation_rows_too(tiny_config) -> None:
    """A series that reaches its highest values only in its last rows (the validation split of
    a user's file): the stored range holds them, so they are never clipped away."""
    data = np.abs(_windows(24, 12, 2, 0.3, seed=7))  # (24, 12, 2) in (0, ~3)
    valid = data[:4] + 10.0  # the latest rows, above every training value
    imputer = Imputer(tiny_config).fit(data, valid=valid, progress=False)
    assert imputer.bounds is not None
    assert np.all(imputer.bounds.data_high >= np.nanmax(valid, axis=(0, 1)))


@pytest.mark.parametrize("sampler", ["ancestral", "dpm_solver", "ode", "ddim", "sde"])
def test_conditioning_beyond_the_training_range_stays_inside_the_bounds(
    tiny_config, sampler: str
) -> None:
    """Trained on values in (0, 2), imputing windows whose given values are in the thousands
    (a drifted sensor): every sample of every missing entry stays inside the stored training
    range (exactly 0 below for a non-negative column) joined with the range the input's own
    given values span, 10 % of that span beyond them (`ValueBounds.covering`)."""
    data = np.abs(_windows(24, 12, 2, 0.3, seed=7))  # (24, 12, 2), ≥ 0
    imputer = Imputer(tiny_config).fit(data, progress=False)
    assert imputer.bounds is not None
    b = imputer.bounds
    assert b.data_low.tolist() == [0.0, 0.0] and np.all(b.data_high < 10.0)
    drifted = 1000.0 * (1.0 + data[:3])  # observed values far above anything seen
    drifted[:, 4:8, 0] = np.nan  # a gap to fill
    lo, hi = np.nanmin(drifted, axis=(0, 1)), np.nanmax(drifted, axis=(0, 1))  # (K,)
    high = np.maximum(b.data_high, hi + 0.1 * (hi - lo)) * (1 + 1e-6)
    assert np.all(high > 2000.0)
    result = imputer.impute(drifted, n_samples=8, sampler=sampler, steps=6)
    missing = np.isnan(drifted)[:, None].repeat(8, axis=1)  # (N, S, L, K)
    k_of = np.broadcast_to(np.arange(2), missing.shape)[missing]
    imputed = result.samples[missing]
    assert np.all(imputed >= 0.0) and np.all(imputed <= high[k_of])
    observed = ~missing
    assert np.array_equal(
        result.samples[observed], np.broadcast_to(drifted[:, None], missing.shape)[observed]
    )


def test_training_in_steps_with_validation_rounds(tiny_config) -> None:
    """7 steps with a validation every 3: rounds end at steps 3, 6 and 7, across epochs of 2
    steps; a wall-time budget stops the run after the step that passes it."""
    data = _windows(16, 12, 2, 0.3, seed=8)  # 16 windows, batch 8: 2 steps per epoch
    cfg = replace(
        tiny_config,
        train=replace(tiny_config.train, steps=7, validate_every=3, lr_schedule="cosine"),
    )
    h = Imputer(cfg).fit(data, valid=data[:4], progress=False).history
    assert h is not None and h.steps == [3, 6, 7] and h.epochs == [1, 2, 3]
    timed = replace(cfg, train=replace(cfg.train, max_minutes=1e-9))
    h = Imputer(timed).fit(data, progress=False).history
    assert h is not None and h.steps == [1]


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "dpm_solver"])
def test_samples_do_not_depend_on_the_chunk_size(tiny_config, sampler: str) -> None:
    """Window i draws from its own stream (seed, i): cutting the windows into other batches
    (one window per call, two, or all) gives the same samples, to float32 rounding (a CPU's
    matmul kernels may block a batch of another size differently: on an AMD EPYC 2 of 756
    values differ in the last bit). Another stream would move every value by O(1)."""
    data = _windows(7, 12, 3, 0.3, seed=0)
    imputer = Imputer(tiny_config).fit(data, progress=False)
    opts = {"n_samples": 3, "seed": 4, "sampler": sampler, "steps": 4, "eta": 1.0}
    runs = [imputer.impute(data, chunk_size=c, **opts).samples for c in (3, 6, None)]
    for other in runs[1:]:
        np.testing.assert_allclose(other, runs[0], rtol=1e-5, atol=1e-6)
    assert not np.array_equal(runs[0][0], runs[0][1])  # windows do not share a stream


def test_denoise_samples_the_observed_values_too(tiny_config) -> None:
    """Purification through the API: observed values come back as samples (not as given),
    spread about them; the option is refused where it cannot be honoured."""
    data = _windows(24, 12, 3, 0.3, seed=0)
    imputer = Imputer(tiny_config).fit(data, progress=False)
    out = imputer.impute(data[:4], n_samples=8, seed=0, steps=10, denoise=0.2)
    observed = ~np.isnan(data[:4])
    assert np.isfinite(out.samples).all()
    draws = out.samples.transpose(0, 2, 3, 1)  # (N, L, K, S)
    assert draws[observed].std(axis=-1).min() > 0  # every observed entry is sampled
    assert not np.array_equal(out.median[observed], data[:4][observed])
    with pytest.raises(InputError, match="ancestral"):
        imputer.impute(data[:1], sampler="dpm_solver", denoise=0.2)
    with pytest.raises(InputError, match="one positive number or 3"):
        imputer.impute(data[:1], denoise=[0.1, 0.2])
    with pytest.raises(InputError, match="denoise start must be a number of at least 1"):
        imputer.impute(data[:1], denoise=0.2, denoise_start=0.5)
    # a randomised start above the noise level: other draws from the same seed
    later = imputer.impute(data[:4], n_samples=8, seed=0, steps=10, denoise=0.2, denoise_start=3)
    assert np.isfinite(later.samples).all() and not np.array_equal(later.samples, out.samples)
    imputer.scaler = replace(imputer.scaler, log_scale=np.array([0.0, 1.0, 0.0]))
    with pytest.raises(InputError, match="log-transformed"):
        imputer.impute(data[:1], denoise=0.2)


def test_residual_prior_is_fitted_saved_and_resumed(tiny_config, tmp_path) -> None:
    """diffusion.prior_mean = interpolation: the scale is fitted from the training windows
    (positive, one per feature), stored in config.json and read back; a resumed run fits the
    same scale; imputations return the observed entries exactly and stay inside the bounds;
    a config.json whose scale does not match its configuration is refused."""
    cfg = replace(tiny_config, diffusion=replace(tiny_config.diffusion, prior_mean="interpolation"))
    data = _windows(24, 12, 3, 0.3, seed=11)
    imputer = Imputer(cfg).fit(data, output_dir=tmp_path / "m", progress=False)
    assert imputer.prior is not None
    scale = imputer.prior.scale
    assert scale.shape == (3,) and bool((scale > 0).all())
    loaded = Imputer.load(tmp_path / "m")
    assert loaded.prior is not None and torch.equal(loaded.prior.scale, scale)
    result = loaded.impute(data[:4], n_samples=5, seed=0)
    observed = np.broadcast_to(~np.isnan(data[:4])[:, None], result.samples.shape)
    assert np.array_equal(
        result.samples[observed], np.broadcast_to(data[:4, None], observed.shape)[observed]
    )
    assert loaded.bounds is not None
    assert np.all(result.samples <= loaded.bounds.data_high) and np.all(
        result.samples >= loaded.bounds.data_low
    )

    resumed = Imputer(cfg).fit(data, output_dir=tmp_path / "m", resume=True, progress=False)
    assert resumed.prior is not None and torch.equal(resumed.prior.scale, scale)

    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["prior_scale"] = None
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="residual scale is missing"):
        Imputer.load(tmp_path / "m")


def test_prior_seasons_are_fitted_saved_and_resumed(tiny_config, tmp_path) -> None:
    """diffusion.prior_season = auto: one season per feature chosen on the training windows,
    stored in config.json and read back, kept by a resumed run; refused without the residual
    prior, and a config.json with an unusable season is refused in one line."""
    diffusion = replace(tiny_config.diffusion, prior_mean="interpolation", prior_season="auto")
    cfg = replace(tiny_config, diffusion=diffusion)
    data = _windows(24, 12, 3, 0.3, seed=11)
    imputer = Imputer(cfg).fit(data, output_dir=tmp_path / "m", progress=False)
    assert imputer.prior is not None and imputer.prior.period is not None
    period = imputer.prior.period
    assert period.shape == (3,) and bool((period >= 1).all()) and bool((period < 12).all())
    loaded = Imputer.load(tmp_path / "m")
    assert loaded.prior is not None and torch.equal(loaded.prior.period, period)
    resumed = Imputer(cfg).fit(data, output_dir=tmp_path / "m", resume=True, progress=False)
    assert resumed.prior is not None and torch.equal(resumed.prior.period, period)

    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    for bad in ([1, 0, 1], [1, 2.5, 1]):
        meta["prior_period"] = bad
        (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
        with pytest.raises(CheckpointError, match=r"unreadable residual prior.*seasons"):
            Imputer.load(tmp_path / "m")
    zero = replace(diffusion, prior_mean="zero")
    with pytest.raises(ValueError, match="prior_season needs"):
        Imputer(replace(cfg, diffusion=zero)).fit(data, progress=False)


def test_the_spread_is_calibrated_saved_and_applied(tiny_config, tmp_path) -> None:
    """train.calibration_windows > 0: training ends by fitting one spread level per feature on
    the validation windows, stored in config.json and read back; impute keeps the median and
    the observed values whether it applies it or not (--uncalibrated), and a stored
    calibration that does not fit the model is refused in one line."""
    cfg = replace(tiny_config, train=replace(tiny_config.train, calibration_windows=32))
    data = _windows(24, 12, 3, 0.3, seed=5)
    valid = _windows(4, 12, 3, 0.3, seed=6)
    imputer = Imputer(cfg).fit(data, valid=valid, output_dir=tmp_path / "m", progress=False)
    spread = imputer.spread
    assert spread is not None and spread.horizon is None and spread.level.shape == (3,)
    loaded = Imputer.load(tmp_path / "m")
    assert loaded.spread is not None and np.array_equal(loaded.spread.level, spread.level)
    calibrated = loaded.impute(data[:3], n_samples=7, seed=0, clip=False)
    raw = loaded.impute(data[:3], n_samples=7, seed=0, clip=False, calibrated=False)
    np.testing.assert_allclose(calibrated.median, raw.median, rtol=1e-5, atol=1e-6)
    observed = np.broadcast_to(~np.isnan(data[:3])[:, None], raw.samples.shape)
    assert np.array_equal(calibrated.samples[observed], raw.samples[observed])
    median = np.median(raw.samples, axis=1, keepdims=True)
    factor = spread.factor(12, 7)
    np.testing.assert_allclose(
        calibrated.samples[~observed],
        (median + factor * (raw.samples - median))[~observed],
        rtol=1e-4,
        atol=1e-5,
    )
    assert Imputer(tiny_config).fit(data, valid=valid, progress=False).spread is None

    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["spread"]["level"] = [1.0, 1.0]
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="spread calibration for 2 features"):
        Imputer.load(tmp_path / "m")
    meta["spread"]["level"] = [1.0, -1.0, 1.0]
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unreadable spread calibration"):
        Imputer.load(tmp_path / "m")


def test_a_wide_file_calibrates_on_fewer_windows(tiny_config, monkeypatch) -> None:
    """At most CALIBRATION_SERIES windows × features are sampled for the calibration, and
    never fewer than 8 windows: the cost of a wide file's calibration stays bounded."""
    cfg = replace(tiny_config, train=replace(tiny_config.train, calibration_windows=64))
    data, valid = _windows(24, 12, 3, 0.3, seed=5), _windows(4, 12, 3, 0.3, seed=6)
    imputer = Imputer(cfg).fit(data, valid=valid, progress=False)
    sampled: list[int] = []
    real = Imputer.sample_sharded

    def spy(self, windows, *args, **kwargs):  # type: ignore[no-untyped-def]
        sampled.append(len(windows))
        return real(self, windows, *args, **kwargs)

    monkeypatch.setattr(Imputer, "sample_sharded", spy)
    valid_n = imputer.scaler.transform(valid, ~np.isnan(valid))  # type: ignore[union-attr]
    windows = windows_from_array(valid_n)
    for series, expected in ((3 * 12, 12), (3 * 64, 64), (3, 8)):
        monkeypatch.setattr("csdi.imputer.CALIBRATION_SERIES", series)
        imputer.calibrate_spread(windows)
        assert sampled[-1] == expected


def test_compiled_training_and_sampling_match_eager(tiny_config, eager_compile) -> None:
    """train.compile and sampling.compile put the network through torch.compile (here with
    dynamo's eager backend, `eager_compile`) and change no result beyond float rounding."""
    compiled = eager_compile
    data = _windows(24, 12, 3, 0.3, seed=3)
    eager = Imputer(tiny_config).fit(data, progress=False)
    fast_cfg = replace(tiny_config, train=replace(tiny_config.train, compile=True))
    fast = Imputer(fast_cfg).fit(data, progress=False)
    assert len(compiled) == 1  # the training module
    assert eager.history is not None and fast.history is not None
    np.testing.assert_allclose(fast.history.train_loss, eager.history.train_loss, rtol=1e-4)
    plain = eager.impute(data[:3], n_samples=4, seed=0, sampler="ddim", steps=4)
    through = eager.impute(data[:3], n_samples=4, seed=0, sampler="ddim", steps=4, compile=True)
    assert len(compiled) == 2  # the sampling forward
    np.testing.assert_allclose(through.samples, plain.samples, rtol=1e-4, atol=1e-4)
