from __future__ import annotations

from dataclasses import replace

import pytest

from csdi.config import (
    ConfigError,
    ExperimentConfig,
    TrainConfig,
    flatten,
    from_dict,
    load_config,
    own_data_config,
    to_dict,
)


def test_defaults_are_csdi_training_defaults() -> None:
    cfg = load_config(None)
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.epochs) == (1e-3, 16, 200)
    assert cfg.train.lr_milestones == (0.75, 0.9)
    assert (cfg.model.channels, cfg.model.n_layers, cfg.model.n_heads) == (64, 4, 8)


def test_overrides_are_typed() -> None:
    cfg = load_config(
        None,
        [
            "train.epochs=3",
            "data.stride=none",
            "train.lr_milestones=0.5,0.8",
            "model.feature_subset=8",
            "diffusion.antithetic=true",
        ],
    )
    assert cfg.train.epochs == 3 and cfg.data.stride is None
    assert cfg.train.lr_milestones == (0.5, 0.8)
    assert cfg.model.feature_subset == 8 and cfg.diffusion.antithetic is True


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epoch=3", "unknown config key 'train.epoch'"),
        ("train.device=gpu", "'gpu' is not one of"),
        ("train.epochs=many", "'many' is not a valid int"),
        ("train.epochs=2.5", "not a valid int"),
        ("nosuch", "must look like section.key=value"),
        ("train.batch_size=0", r"'train.batch_size': 0 is outside \[1, inf\)"),
        ("train.max_minutes=-1", r"'train.max_minutes': -1.0 is outside \(0, inf\)"),
        ("model.channels=0", r"'model.channels': 0 is outside"),
        ("model.dropout=1", r"'model.dropout': 1.0 is outside \[0, 1\)"),
        ("sampling.eta=nan", r"'sampling.eta': nan is outside"),
        ("sampling.n_samples=0", r"'sampling.n_samples': 0 is outside"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_ranges_keep_what_the_code_accepts_and_one_value_is_a_tuple(tmp_path) -> None:
    assert load_config(None, ["data.validation_fraction=0"]).data.validation_fraction == 0
    toml = tmp_path / "c.toml"
    toml.write_text("[data]\nmissing_values = -999\n")
    assert load_config(toml).data.missing_values == (-999.0,)


def test_round_trip_through_dict_and_toml(tmp_path) -> None:
    cfg = load_config(None, ["train.epochs=7", "sampling.sampler=ode"])
    assert from_dict(ExperimentConfig, to_dict(cfg)) == cfg
    assert flatten(cfg)["train.epochs"] == 7
    path = tmp_path / "c.toml"
    path.write_text('name = "x"\n[train]\nepochs = 5\nlr_milestones = [0.5]\n')
    loaded = load_config(path, ["train.seed=3"])
    assert (loaded.name, loaded.train.epochs, loaded.train.lr_milestones, loaded.train.seed) == (
        "x",
        5,
        (0.5,),
        3,
    )


def test_bad_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_shipped_pipeline_configs_load() -> None:
    from pathlib import Path

    configs = sorted(Path(__file__).resolve().parents[1].joinpath("pipelines").glob("*.toml"))
    assert configs, "pipelines/ should hold the PhysioNet configs"
    for path in configs:
        load_config(path)


def test_batch_shrinks_for_wide_files_only() -> None:
    """`for_width`: batch_size at most max(4, max_series_per_batch // K) windows; narrow files
    and configs without the cap keep their batch."""
    train = replace(TrainConfig(), batch_size=16, max_series_per_batch=128)
    sizes = {k: train.for_width(k).batch_size for k in (1, 6, 8, 11, 16, 36, 300)}
    assert sizes == {1: 16, 6: 16, 8: 16, 11: 11, 16: 8, 36: 4, 300: 4}
    assert replace(train, batch_size=2).for_width(36).batch_size == 2  # never raised
    assert TrainConfig().for_width(300) == TrainConfig()
    assert own_data_config().train.max_series_per_batch == 128
