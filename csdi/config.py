"""Experiment configuration: frozen dataclasses, read from TOML, overridden by `key=value` strings.

Only this module and the CLI read configuration files; library functions take explicit arguments.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the key."""


@dataclass(frozen=True)
class DataConfig:
    """Which data and protocol. `dataset`: physionet | synthetic | table (own CSV / parquet) |
    pm25 | exchange_rate_nips | etth1 | ettm1."""

    dataset: str = "synthetic"
    path: str | None = None  # own data: the CSV or parquet file
    time_column: str | None = None
    layout: Literal["auto", "wide", "long"] = "auto"
    # own data: how dates like 02/01/2024 read; auto takes the reading in time order
    date_order: Literal["auto", "day_first", "month_first"] = "auto"
    missing_values: tuple[float, ...] = ()  # own data: codes that mean missing (-999)
    drop_non_numeric: bool = False  # own data: drop text columns (saying which) instead of failing
    window: int = 48
    stride: int | None = None  # own data: training windows start every `stride` rows (None: 1)
    missing_ratio: float = 0.1  # held-out evaluation targets (physionet, synthetic)
    fold: int = 0  # pm25: CSDI's validindex (0 → month 1 validates)
    normalisation: Literal["all", "train"] = "all"
    n_windows: int = 1200  # synthetic only
    n_features: int = 6  # synthetic only
    validation_fraction: float = 0.1  # own data: the last rows, kept for validation
    log_transform: Literal["auto", "none", "all"] = "auto"  # own data: scaling.fit_sensor_scaler
    horizon: int | None = None  # forecasting: steps to forecast (the last `horizon` of a window)
    context: int | None = None  # forecasting: history steps (None: the dataset's default)
    test_stride: int = 1  # forecasting: stride of validation/test windows (Informer: 1)


@dataclass(frozen=True)
class ModelConfig:
    """Score network hyper-parameters (ARCHITECTURE §2); n_features comes from the data."""

    channels: int = 64
    n_layers: int = 4
    n_heads: int = 8
    diffusion_embedding_dim: int = 128
    time_embedding_dim: int = 128
    feature_embedding_dim: int = 16
    ff_dim: int = 64
    dropout: float = 0.1
    feature_subset: int | None = None
    attention: Literal["full", "linear"] = "full"
    cond_input: Literal["masked", "interpolated", "both"] = "masked"  # see NetworkConfig
    temporal_kernel: int = 0  # see NetworkConfig; 0: none (CSDI's network)
    time_bias: int = 0  # see NetworkConfig; 0: none (CSDI's network)
    feature_bias: bool = False  # see NetworkConfig; False: none (CSDI's network)
    cond_centre: bool = False  # see NetworkConfig; False: the values as given (CSDI's network)


@dataclass(frozen=True)
class DiffusionConfig:
    """Noise schedule and training objective (ARCHITECTURE §1)."""

    schedule: str = "csdi_quad"
    objective: str = "dsm_simple"
    antithetic: bool = False
    # "zero": CSDI's N(0, I) prior; "interpolation": diffuse the residual from the linear
    # interpolation of the conditioning values, per-feature scale (csdi.diffusion.prior)
    prior_mean: Literal["zero", "interpolation"] = "zero"
    # with prior_mean = "interpolation", beyond the last given value: "none" holds it, "auto"
    # repeats each feature's season chosen on the training windows (prior.seasonal_periods)
    prior_season: Literal["none", "auto"] = "none"


#: the fewest windows per batch `TrainConfig.for_width` goes down to
MIN_BATCH = 4


@dataclass(frozen=True)
class TrainConfig:
    """CSDI's training defaults plus EMA, best-validation checkpoint, resume and budgets.

    The run lasts `epochs` passes over the training windows, or `steps` optimizer steps when
    set, and stops early after `max_minutes` of wall time. `lr_schedule`: "milestones" (CSDI:
    ×0.1 at each fraction of the epochs or steps in `lr_milestones`) or "cosine" (linear warm-up
    over `warmup_steps`, then cosine decay to `lr_min_factor`·lr over the budget, the budget
    being the larger of the steps and the wall time used, so a time-limited run still anneals).
    `validate_every`: steps between validations and checkpoints (None: once per epoch).
    `grad_clip`: the largest global L2 norm of a step's gradient; a larger one is scaled down to
    it before the optimizer step (Pascanu et al. 2013), which keeps one bad batch at a high
    learning rate from killing the network's ReLUs. `max_series_per_batch`: a cap on windows ×
    features per batch; a wide file's batch shrinks to max(4, cap // K) windows (`for_width`).
    """

    epochs: int = 200
    steps: int | None = None
    batch_size: int = 16
    max_series_per_batch: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-6
    adam_beta2: float = 0.999  # Adam's second-moment decay (Kingma & Ba 2015)
    lr_schedule: Literal["milestones", "cosine"] = "milestones"
    lr_milestones: tuple[float, ...] = (0.75, 0.9)  # fractions of the epochs; ×0.1 at each
    warmup_steps: int = 0
    lr_min_factor: float = 0.01
    ema_decay: float = 0.999
    # rescale the gradient to this global L2 norm when larger (None: never; CSDI does not)
    grad_clip: float | None = None
    masking: str = "random"
    seed: int = 0
    device: Literal["cpu", "cuda", "auto"] = "auto"
    max_minutes: float | None = None  # stop after this wall time (the best checkpoint is kept)
    validate_every: int | None = None
    snapshot_every: int | None = None  # keep the EMA weights every N validations (curves)
    snapshot_minutes: tuple[float, ...] = ()  # also keep them when these wall times are passed
    precision: Literal["fp32", "bf16", "auto"] = "fp32"  # of the network's forward (nn.precision)
    compile: bool = False  # torch.compile the training forward and backward (inductor)
    # after training, fit the samples' spread on this many validation windows (0: never;
    # csdi.calibration, Imputer.calibrate_spread)
    calibration_windows: int = 0

    def for_width(self, n_features: int) -> TrainConfig:
        """This config with `batch_size` at most max(4, `max_series_per_batch` // n_features)
        windows: a file of 36 columns trains on 4 windows a step where one of 6 takes 16, about
        as many series per step and four times the steps (CRPS −4.8 % on 36 PM2.5 stations,
        reports/own_data/ablations.md)."""
        if self.max_series_per_batch is None:
            return self
        size = min(self.batch_size, max(MIN_BATCH, self.max_series_per_batch // n_features))
        return replace(self, batch_size=size)


@dataclass(frozen=True)
class SamplingConfig:
    """How samples are drawn at evaluation / imputation time."""

    sampler: str = "ancestral"
    steps: int = 50
    n_samples: int = 100
    chunk_size: int | None = None
    seed: int = 0
    eta: float = 0.0  # ddim only: 0 deterministic (DDIM), 1 the ancestral step
    time_grid: Literal["uniform", "quadratic", "logsnr"] = "uniform"  # samplers.make_time_grid
    clip: bool = True  # keep x̂₀ inside the model's value bounds (csdi.diffusion.bounds)
    precision: Literal["fp32", "bf16", "auto"] = "fp32"  # of the network calls (csdi.nn.precision)
    compile: bool = False  # torch.compile the network's forward (inductor; compiles per process)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "synthetic"
    output_dir: str = "runs/synthetic"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


T = TypeVar("T")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a TOML/JSON/string value to the annotated type, or raise naming the key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"config key {key!r}: cannot use {value!r} ({'; '.join(errors)})")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"config key {key!r}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        elif not isinstance(value, (list, tuple)):
            value = [value]  # TOML `missing_values = -999`: one value
        return tuple(_coerce(v, args[0], key) for v in value)
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key {key!r}: {value!r} is not a valid {tp.__name__}") from None
    raise ConfigError(f"config key {key!r}: unsupported type {tp}")


#: the values a numeric config key may take, as (low, high) with "[", "(" / "]", ")" marking
#: closed and open ends (inf: unbounded); checked by `from_dict`, so a TOML file and a
#: `--set` override are refused with the key's name before anything runs
RANGES: dict[str, str] = {
    "data.window": "[2, inf)",
    "data.stride": "[1, inf)",
    "data.missing_ratio": "(0, 1)",
    "data.n_windows": "[1, inf)",
    "data.n_features": "[1, inf)",
    "data.validation_fraction": "[0, 1)",
    "data.horizon": "[1, inf)",
    "data.context": "[1, inf)",
    "data.test_stride": "[1, inf)",
    "model.channels": "[1, inf)",
    "model.n_layers": "[1, inf)",
    "model.n_heads": "[1, inf)",
    "model.diffusion_embedding_dim": "[2, inf)",
    "model.time_embedding_dim": "[2, inf)",
    "model.feature_embedding_dim": "[1, inf)",
    "model.ff_dim": "[1, inf)",
    "model.dropout": "[0, 1)",
    "model.feature_subset": "[1, inf)",
    "model.temporal_kernel": "[0, inf)",
    "model.time_bias": "[0, inf)",
    "train.epochs": "[1, inf)",
    "train.steps": "[1, inf)",
    "train.batch_size": "[1, inf)",
    "train.max_series_per_batch": "[1, inf)",
    "train.lr": "(0, inf)",
    "train.weight_decay": "[0, inf)",
    "train.adam_beta2": "[0, 1)",
    "train.warmup_steps": "[0, inf)",
    "train.lr_min_factor": "[0, 1]",
    "train.ema_decay": "[0, 1)",
    "train.grad_clip": "(0, inf)",
    "train.seed": "[0, inf)",
    "train.max_minutes": "(0, inf)",
    "train.validate_every": "[1, inf)",
    "train.snapshot_every": "[1, inf)",
    "train.calibration_windows": "[0, inf)",
    "sampling.steps": "[1, inf)",
    "sampling.n_samples": "[1, inf)",
    "sampling.chunk_size": "[1, inf)",
    "sampling.seed": "[0, inf)",
    "sampling.eta": "[0, inf)",
}


def _check_range(key: str, value: Any) -> None:
    """Raise ConfigError naming `key` when `value` lies outside `RANGES[key]` (or is NaN)."""
    spec = RANGES.get(key)
    if spec is None or value is None or isinstance(value, bool):
        return
    low_text, high_text = (part.strip(" [()]") for part in spec.split(","))
    low, high = float(low_text), float(high_text)
    above = value >= low if spec.startswith("[") else value > low
    below = value <= high if spec.endswith("]") else value < high
    if not (above and below):
        raise ConfigError(f"config key {key!r}: {value!r} is outside {spec}")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build a (nested) frozen dataclass from a dict; unknown keys raise naming the valid ones."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + sorted(unknown)[0]!r}; valid keys here: {sorted(names)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        if is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {prefix + name!r} must be a table")
            kwargs[name] = from_dict(tp, value, prefix=f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
            _check_range(prefix + name, kwargs[name])
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (JSON-serialisable) of a config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def flatten(cfg: Any) -> dict[str, Any]:
    """`{"train.lr": 0.001, ...}`: the flat form logged as MLflow params, of a config or of
    its nested-dict form (`to_dict`, a saved experiment.json)."""
    out: dict[str, Any] = {}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[prefix + k] = v

    walk(cfg if isinstance(cfg, dict) else to_dict(cfg), "")
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings to a nested dict (a copy); values stay strings here."""
    result = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = result
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {p!r} is not a table")
        node[parts[-1]] = value.strip()
    return result


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a TOML experiment config (or the defaults when `path` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML ({e})") from None
    data = apply_overrides(data, overrides or [])
    return from_dict(ExperimentConfig, data)


#: What `csdi train --data FILE` uses unless told otherwise (`--set`, `--steps`, …): a budget
#: in optimizer steps and minutes that fits about 10 minutes on a 2-core CPU, a cosine schedule
#: that anneals within it, windows from every start position, and the network and sampler
#: measured best per CPU minute on held-out own-data files (reports/own_data).
OWN_DATA_DEFAULTS: tuple[str, ...] = (
    "train.steps=10000",  # a cap for fast machines: on a 2-core CPU the 8 minutes end first
    # wide files: 4 windows of 36 columns a step, not 16: CRPS -4.8 % (paired, ablations.md)
    "train.max_series_per_batch=128",
    "train.lr=6e-3",  # CRPS -7 % gp_smooth over two seeds, -1 % var1, others level (ablations.md)
    "train.grad_clip=1",  # keeps a bad batch at this rate from killing the ReLUs (ablations.md)
    "train.adam_beta2=0.99",  # CRPS -5 % gp_smooth, -4 % gp_blocks, -1 % PM2.5, paired runs
    "train.max_minutes=8",
    "train.lr_schedule=cosine",
    "train.warmup_steps=100",
    "train.validate_every=250",
    "model.dropout=0",
    "model.n_heads=2",
    # half CSDI's 64: 1.7-2x the steps, CRPS level or -2..-5 % on 4 sets, 1.5x faster imputing
    "model.channels=32",
    "model.cond_input=both",
    "model.temporal_kernel=5",  # CRPS -29 % gp_smooth, -10 % var1, -4 % gp_blocks (ablations.md)
    "model.time_bias=24",  # CRPS -9 % gp_smooth over two seeds, the other sets level (ablations.md)
    "model.feature_bias=true",  # CRPS -5 % and -6 % on the demo, -4 % and -6 % gp_smooth
    "diffusion.prior_mean=interpolation",  # residual prior: CRPS -25 % gp_smooth, -8 % PM2.5
    "sampling.sampler=dpm_solver",
    "sampling.steps=10",
    "sampling.time_grid=logsnr",
    "sampling.precision=auto",  # bf16 where native: same CRPS, 1.3x faster (precision.md)
)

#: What `csdi train --data FILE --horizon H` adds to `OWN_DATA_DEFAULTS` (before `--set`): beyond
#: the history the residual prior repeats each feature's season where one beats the last value
#: on the training windows (csdi.diffusion.prior.seasonal_periods): ETTh1 24 h ahead CRPS 0.304
#: against 0.427, paired (reports/own_forecast). And the samples' spread is calibrated on 64
#: validation forecasts (csdi.calibration), whose task is the forecasts' own: PM2.5 24 h ahead
#: CRPS -1.4 %, 90 % coverage 0.71 -> 0.74, ETTh1 level (paired). Not for imputation, whose
#: gaps at imputing are not the training masks: there it was level (+0.5 %, -0.3 %).
OWN_FORECAST_DEFAULTS: tuple[str, ...] = (
    "diffusion.prior_season=auto",
    "train.calibration_windows=64",
)


#: Named training recipes for `csdi train --recipe NAME`, applied over the config (and over
#: `OWN_DATA_DEFAULTS`) before `--set`: each changes the network's function (heads, dropout) and
#: the optimisation, so each is named rather than a silent change of the defaults.
#: - "csdi": CSDI's own (Tashiro et al. 2021: 64 channels, 8 heads, dropout 0.1, lr 1e-3 stepped
#:   down ×0.1 at 75 % and 90 % of the budget), the config defaults;
#: - "fast": 2 heads of width 32, no dropout, lr 2e-3 with 200 warm-up steps and a cosine that
#:   anneals within the budget (steps, epochs or `train.max_minutes`): on PhysioNet 10 % 3.1× the
#:   steps per second on this CPU, and CSDI's published CRPS within 120 minutes on 2 cores
#:   (reports/performance/training_budget.md);
#: - "fast_c32": "fast" with 32 channels instead of 64: on PhysioNet 10 % twice the steps per
#:   minute and CRPS 0.2745 against 0.2898 after a 30-minute budget on one thread.
RECIPES: dict[str, tuple[str, ...]] = {
    "csdi": (
        "model.channels=64",
        "model.n_heads=8",
        "model.dropout=0.1",
        "train.lr=1e-3",
        "train.lr_schedule=milestones",
        "train.warmup_steps=0",
    ),
    "fast": (
        "model.n_heads=2",
        "model.dropout=0",
        "train.lr=2e-3",
        "train.lr_schedule=cosine",
        "train.warmup_steps=200",
        "train.validate_every=500",
    ),
}
RECIPES["fast_c32"] = (*RECIPES["fast"], "model.channels=32")


def own_data_config(overrides: list[str] | None = None) -> ExperimentConfig:
    """The defaults for a user's own series (`OWN_DATA_DEFAULTS`), then `overrides`."""
    return load_config(None, [*OWN_DATA_DEFAULTS, *(overrides or [])])
