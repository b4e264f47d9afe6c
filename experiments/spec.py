"""Experiment specs: one TOML file says what to train, on which data, how to judge it.

```toml
name = "btc_1h_hmm_lstm"      # MLflow experiment and registered model name
seed = 42

[data]
pair = "BTC/USDT"                  # or a whitelist: pairs = ["ETH/BTC", "LTC/BTC"]
timeframe = "1h"
exchange = "binance"
timerange = "20180101-20200101"   # YYYYMMDD-YYYYMMDD, either side may be empty

[features]                         # a FeatureSpec; omit for the default feature set
preset = "default"

[regime]                           # ml.config.HmmRegimeConfig (kind = "jump": JumpRegimeConfig)
n_states = 3

[model]                            # ml.config.ModelConfig
kind = "hmm_lstm"                  # lstm | hmm_lstm | lightgbm | rules
params = { hidden_size = 32, max_epochs = 10 }

[target]
kind = "direction"                 # or "return", or "direction_band" (with band = 0.002)
horizon = 1

[walk_forward]
scheme = "expanding"               # or "rolling"
folds = 3

[trust]                            # optional: FreqAI's DI_threshold
dissimilarity_threshold = 2.0      # do_predict = 0 for rows unlike the training data

[pipeline]                         # optional: FreqAI's data pipeline (ml.input_pipeline)
weight_factor = 0.9                # recent training rows weigh more
principal_component_analysis = true
use_SVM_to_remove_outliers = true  # outliers are not trained on, nor traded
```
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from common.errors import SpecError, validation_message
from common.executors import ExecutorName
from experiments.tuning.space import TuneConfig, set_path
from features.feature_spec import (
    FeatureSpec,
    default_spec,
    slow_clock_spec,
    spec_with_higher_timeframe,
)
from features.timeframes import timeframe_to_seconds
from features.timerange import TimeRange
from ml.config import (
    LEGACY_REGIME_FIELDS,
    HmmRegimeConfig,
    LifetimeConfig,
    ModelConfig,
    PipelineConfig,
    RegimeSettings,
    SizingConfig,
    TrainingConfig,
    TrustConfig,
    check_lifetime,
    check_pipeline,
    check_sizing,
)
from ml.model_uris import model_name
from ml.targets import TargetSpec
from ml.walkforward import WalkForwardSpec

# the shipped example specs (installed with the package)
SHIPPED_SPECS = Path(__file__).resolve().parent / "specs"


class DataConfig(BaseModel):
    """``[data]``: one ``pair``, or a whitelist ``pairs``: one model per pair
    (``pooling = "per_pair"``, the default) or one model over all of them
    (``pooling = "pooled"``, see :mod:`ml.pooled`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pair: str = "BTC/USDT"
    pairs: tuple[str, ...] = ()
    pooling: Literal["per_pair", "pooled"] = "per_pair"
    timeframe: str = "1h"
    exchange: str = "binance"
    timerange: str | None = None

    @field_validator("pair")
    @classmethod
    def _pair(cls, value: str) -> str:
        return _checked_pair(value)

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        checked = tuple(_checked_pair(pair) for pair in value)
        repeated = sorted({pair for pair in checked if checked.count(pair) > 1})
        if repeated:
            raise ValueError(f"pairs lists {', '.join(repeated)} more than once")
        return checked

    @model_validator(mode="before")
    @classmethod
    def _pair_or_pairs(cls, data: Any) -> Any:
        """With ``pairs``, ``pair`` is the first of them (what a dump of the spec holds);
        another ``pair`` beside ``pairs`` is an error."""
        if isinstance(data, dict) and data.get("pairs"):
            first = next(iter(data["pairs"]))
            if data.get("pair", first) != first:
                raise ValueError("give either pair or pairs, not both")
            data = {**data, "pair": first}
        return data

    @property
    def whitelist(self) -> tuple[str, ...]:
        """The pairs this spec trains and backtests."""
        return self.pairs or (self.pair,)

    @model_validator(mode="after")
    def _pooling(self) -> DataConfig:
        if self.pooling == "pooled" and len(self.pairs) < 2:
            raise ValueError('pooling = "pooled" needs a whitelist of two or more pairs')
        return self

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        timeframe_to_seconds(value)
        return value

    @field_validator("timerange")
    @classmethod
    def _timerange(cls, value: str | None) -> str | None:
        TimeRange.parse(value)
        return value


def _checked_pair(value: str) -> str:
    base, slash, quote = value.partition("/")
    if not slash or not base or not quote or " " in value:
        raise ValueError(f"{value!r} is not a pair: write BASE/QUOTE, e.g. ETH/BTC")
    return value


class FeaturePreset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["default", "default+4h", "slow_clock"] = "default"
    reference_pairs: tuple[str, ...] = ()  # see FeatureSpec.reference_pairs
    include_shifted_candles: int = Field(default=0, ge=0, le=100)  # see FeatureSpec

    @model_validator(mode="after")
    def _valid(self) -> FeaturePreset:
        self.spec()  # a malformed reference pair is named when the spec is read
        return self

    def spec(self) -> FeatureSpec:
        if self.preset == "slow_clock":
            spec = slow_clock_spec()
        elif self.preset == "default":
            spec = default_spec()
        else:
            spec = spec_with_higher_timeframe(default_spec())
        if not self.reference_pairs and not self.include_shifted_candles:
            return spec
        return FeatureSpec.model_validate(
            {
                **spec.model_dump(),
                "reference_pairs": self.reference_pairs,
                "include_shifted_candles": self.include_shifted_candles,
            }
        )


class BacktestConfig(BaseModel):
    """``[backtest]``: how ``tradingbot backtest SPEC.toml`` tests the spec's champion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = "RegimeStrategy"
    timerange: str = "20200101-20210601"

    @field_validator("timerange")
    @classmethod
    def _timerange(cls, value: str) -> str:
        TimeRange.parse(value)
        return value


class ComputeConfig(BaseModel):
    """``[compute]``: where the spec's independent jobs run (whitelist pairs, scorecard
    markets, folds without warm starts): ``local`` processes or a ``ray`` cluster
    (``RAY_ADDRESS``). ``--executor`` and ``--jobs`` win over it. Where a job runs never
    changes its result, so this is not part of the spec's hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executor: ExecutorName | None = None  # None: ray when RAY_ADDRESS is set, else local
    jobs: int | None = Field(default=None, ge=1)  # workers; default: --jobs, else 1


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(default=42, ge=0, le=2**32 - 1)  # numpy, torch and LightGBM seeds
    data: DataConfig = DataConfig()
    features: FeaturePreset | FeatureSpec = FeaturePreset()
    regime: RegimeSettings = HmmRegimeConfig()
    model: ModelConfig
    target: TargetSpec = TargetSpec()
    walk_forward: WalkForwardSpec = WalkForwardSpec()
    fee: float = Field(default=0.001, ge=0.0, lt=0.1)
    backtest: BacktestConfig = BacktestConfig()
    trust: TrustConfig = TrustConfig()
    sizing: SizingConfig | None = None  # a regime allocation sized by forecast risk
    pipeline: PipelineConfig | None = None  # FreqAI's data pipeline (ml.input_pipeline)
    lifetime: LifetimeConfig = LifetimeConfig()  # FreqAI's model-lifetime settings
    tune: TuneConfig | None = None  # the search space of `tradingbot tune`
    compute: ComputeConfig | None = None  # where its jobs run (not part of the hash)

    @model_validator(mode="after")
    def _sizing(self) -> ExperimentSpec:
        check_sizing(self.model, self.sizing)
        check_pipeline(self.model, self.pipeline)
        check_lifetime(self.model, self.pipeline, self.lifetime)
        return self

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.features.spec() if isinstance(self.features, FeaturePreset) else self.features

    @property
    def training(self) -> TrainingConfig:
        return TrainingConfig(
            model=self.model,
            regime=self.regime,
            target=self.target,
            walk_forward=self.walk_forward,
            fee=self.fee,
            trust=self.trust,
            sizing=self.sizing,
            pipeline=self.pipeline,
            lifetime=self.lifetime,
        )

    @property
    def hash(self) -> str:
        content = self.model_dump(mode="json", exclude={"compute"})
        # specs without whitelists, trust settings or declared strategy spaces keep the
        # hash they had before those existed
        if not content["data"]["pairs"]:
            del content["data"]["pairs"]
        if content["sizing"] is None:
            del content["sizing"]  # nor unsized specs
        if content["pipeline"] is None:
            del content["pipeline"]  # nor specs without a data pipeline
        if content["lifetime"] == LifetimeConfig().model_dump(mode="json"):
            del content["lifetime"]  # nor specs without lifetime settings
        if content["trust"] == TrustConfig().model_dump(mode="json"):
            del content["trust"]
        elif content["trust"].get("expiration_hours") is None:
            del content["trust"]["expiration_hours"]  # nor specs from before expiry
        if content.get("tune") and content["tune"].get("strategy_parameters") is None:
            del content["tune"]["strategy_parameters"]  # nor specs tuned as before it
        if not content["features"].get("reference_pairs", True):
            del content["features"]["reference_pairs"]  # nor specs from before them
        if content["features"].get("include_shifted_candles", 1) == 0:
            del content["features"]["include_shifted_candles"]  # nor before shifted candles
        if content["data"]["pooling"] == "per_pair":
            del content["data"]["pooling"]  # nor specs from before pooled models
        # specs hash as before the HMM and jump settings were split (every field of both)
        content["regime"] = {**LEGACY_REGIME_FIELDS, **content["regime"]}
        if content["regime"]["warm_start"] is True:
            del content["regime"]["warm_start"]  # nor specs from before warm starts
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def is_whitelist(self) -> bool:
        return bool(self.data.pairs)

    def for_pair(self, pair: str) -> ExperimentSpec:
        """The single-pair spec of one pair of a whitelist spec, named by :func:`model_name`
        (the registered model of that pair); a single-pair spec is returned as it is."""
        if not self.is_whitelist:
            if pair != self.data.pair:
                raise SpecError(f"spec {self.name} is for {self.data.pair}, not {pair}")
            return self
        if pair not in self.data.pairs:
            raise SpecError(
                f"{pair} is not in the whitelist of spec {self.name}",
                hint=f"its pairs: {', '.join(self.data.pairs)}",
            )
        data = self.data.model_dump(exclude={"pairs", "pooling"}) | {"pair": pair}
        return self.model_copy(
            update={"name": model_name(self.name, pair), "data": DataConfig.model_validate(data)}
        )

    def with_overrides(
        self, *, pair: str | None = None, timeframe: str | None = None, timerange: str | None = None
    ) -> ExperimentSpec:
        """``pair`` on a whitelist spec selects that pair's spec (see :meth:`for_pair`)."""
        spec = self.for_pair(pair) if pair is not None and self.is_whitelist else self
        data = spec.data.model_dump(exclude_unset=True)
        for key, value in (("pair", pair), ("timeframe", timeframe), ("timerange", timerange)):
            if value is not None:
                data[key] = value
        try:
            return spec.model_copy(update={"data": DataConfig.model_validate(data)})
        except ValidationError as exc:
            raise SpecError(f"invalid override: {validation_message(exc)}") from exc

    def with_params(self, params: dict[str, Any]) -> ExperimentSpec:
        """The spec one tuning trial trains: ``params`` (dotted space keys) applied, no
        ``[tune]`` section. ``strategy.*`` keys are not part of the spec and are skipped."""
        data = self.model_dump(mode="json", exclude={"tune"})
        for key, value in params.items():
            if key.startswith("strategy."):
                continue
            if key == "features.preset" and not isinstance(self.features, FeaturePreset):
                raise SpecError(
                    "space key 'features.preset': the spec declares its own [features], not a preset"
                )
            data = set_path(data, key, value)
        return parse_experiment(data, source=f"trial parameters {params}")


def parse_experiment(data: dict[str, Any], *, source: str) -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: {validation_message(exc)}") from exc


def load_experiment(path: Path) -> ExperimentSpec:
    if not path.exists():
        raise SpecError(
            f"{path}: experiment spec not found", hint="examples are in experiments/specs/"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc})") from exc
    return parse_experiment(data, source=str(path))
