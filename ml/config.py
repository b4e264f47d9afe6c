"""Training configuration: regime model, forecaster, target and walk-forward scheme.

Plain pydantic data with ``extra="forbid"``; the experiment spec (TOML) is made of
these. Forecaster parameters are checked against the estimator's own
``__init__`` so a typo names the bad key and the accepted ones.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from features.timeframes import timeframe_to_seconds
from ml.models import FORECASTERS, REGIME_MODELS, forecaster_class
from ml.models.base import Task
from ml.sizing import DEFAULT_BAND, DEFAULT_CAP, DEFAULT_TARGET_VOLATILITY, RiskBudget
from ml.targets import TargetSpec
from ml.walkforward import WalkForwardSpec

if TYPE_CHECKING:
    from ml.models.forecaster import Forecaster

DEFAULT_REGIME_COLUMNS = ("%-log_return_1", "%-sqrt_wick_1", "%-log_volume_zscore_168")


class _RegimeBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: tuple[str, ...] = DEFAULT_REGIME_COLUMNS

    @property
    def chains_folds(self) -> bool:
        """Whether each walk-forward fold starts from the fold before's model (then a
        job's folds run in order; otherwise they are independent jobs)."""
        return False

    @model_validator(mode="after")
    def _columns(self) -> _RegimeBase:
        if not self.columns:
            raise ValueError("regime.columns: at least one feature column")
        return self


class HmmRegimeConfig(_RegimeBase):
    """``[regime]`` of a Gaussian HMM (the default; ``kind = "hmm"``): ``n_states`` (or
    ``"auto"``: by BIC up to ``max_states``), ``covariance_type``, ``n_restarts``,
    ``n_iter``, ``switch_margin``; ``warm_start``: each walk-forward fold after the first
    starts EM once from the previous fold's fitted HMM instead of ``n_restarts`` random
    starts. Column 0 of ``columns`` must be a return measure: it names the states."""

    kind: Literal["hmm"] = "hmm"
    n_states: Annotated[int, Field(ge=2, le=10)] | Literal["auto"] = 3
    covariance_type: Literal["full", "diag"] = "full"
    n_restarts: int = Field(default=3, ge=1, le=50)
    n_iter: int = Field(default=100, ge=1, le=10_000)
    max_states: int = Field(default=5, ge=2, le=10)
    switch_margin: float = Field(default=0.5, ge=0.0, le=1.0)
    warm_start: bool = True

    @property
    def chains_folds(self) -> bool:
        return self.warm_start

    def estimator_params(self, seed: int, previous: Any = None) -> dict[str, Any]:
        """The parameters of ``RegimeHMM``; ``previous`` (the fold before's model) is its
        warm start when ``warm_start`` is on."""
        params: dict[str, Any] = {
            "n_states": self.n_states,
            "covariance_type": self.covariance_type,
            "n_restarts": self.n_restarts,
            "n_iter": self.n_iter,
            "max_states": self.max_states,
            "switch_margin": self.switch_margin,
            "random_state": seed,
        }
        if self.warm_start and previous is not None:
            params["init_from"] = previous
        return params


class JumpRegimeConfig(_RegimeBase):
    """``[regime] kind = "jump"``: two-state jump models voted over ``jump_penalties``
    (``n_init`` starts each, features clipped at ``clip`` standard deviations). Column 0
    of ``columns`` must be a return measure: it names the states."""

    kind: Literal["jump"]
    jump_penalties: tuple[Annotated[float, Field(ge=0.0, le=1e6)], ...] = Field(
        default=(1.0, 3.0, 10.0, 30.0, 100.0), min_length=1, max_length=20
    )
    n_init: int = Field(default=10, ge=1, le=100)
    clip: float = Field(default=3.0, gt=0.0, le=100.0)

    def estimator_params(self, seed: int, previous: Any = None) -> dict[str, Any]:
        """The parameters of ``RegimeJump`` (each fold fits afresh: ``previous`` unused)."""
        return {
            "jump_penalties": tuple(self.jump_penalties),
            "n_init": self.n_init,
            "clip": self.clip,
            "random_state": seed,
        }


class RegisteredRegimeConfig(_RegimeBase):
    """``[regime]`` of any other regime model of ``ml.models.REGIME_MODELS``: its
    constructor's parameters in ``params`` (every regime model takes ``random_state``,
    set from the spec's seed)."""

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _registered(self) -> RegisteredRegimeConfig:
        if self.kind not in REGIME_MODELS:
            raise ValueError(f"unknown regime kind {self.kind!r}; known: {sorted(REGIME_MODELS)}")
        return self

    def estimator_params(self, seed: int, previous: Any = None) -> dict[str, Any]:
        return {**self.params, "random_state": seed}


def _regime_kind(value: Any) -> str:
    """The union's tag, which an error's location shows: ``regime[kind=hmm].n_states``."""
    kind = value.get("kind", "hmm") if isinstance(value, dict) else getattr(value, "kind", "hmm")
    return f"kind={kind}" if kind in ("hmm", "jump") else "kind=other"


# ``[regime]``: which regime model, on which feature columns; each kind accepts only its
# own settings (a jump spec with ``n_states`` is an error, not a silent default)
RegimeSettings = Annotated[
    Annotated[HmmRegimeConfig, Tag("kind=hmm")]
    | Annotated[JumpRegimeConfig, Tag("kind=jump")]
    | Annotated[RegisteredRegimeConfig, Tag("kind=other")],
    Discriminator(_regime_kind),
]
# what a spec's [regime] hashed as before the split (every field of both kinds)
LEGACY_REGIME_FIELDS: dict[str, Any] = {
    **HmmRegimeConfig().model_dump(mode="json"),
    **JumpRegimeConfig(kind="jump").model_dump(mode="json", exclude={"kind"}),
}


class RegimeConfig(BaseModel):
    """The ``[regime]`` of bundles pickled before the HMM and jump settings were split
    (one class with every field of both). Kept under its old name so that those bundles
    still load; ``ModelBundle`` turns it into :data:`RegimeSettings` on load."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def upgraded(self) -> HmmRegimeConfig | JumpRegimeConfig:
        # unpickled, the old fields are in __dict__; built by hand, they are extras
        fields = {**self.__dict__, **(self.__pydantic_extra__ or {})}
        if fields.get("kind") == "jump":
            names = set(JumpRegimeConfig.model_fields)
            return JumpRegimeConfig.model_validate({k: v for k, v in fields.items() if k in names})
        names = set(HmmRegimeConfig.model_fields)
        return HmmRegimeConfig.model_validate({k: v for k, v in fields.items() if k in names})


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str  # a key of ml.models.FORECASTERS
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_params(self) -> ModelConfig:
        if self.kind not in FORECASTERS:
            raise ValueError(f"unknown model kind {self.kind!r}; known: {sorted(FORECASTERS)}")
        accepted = set(inspect.signature(forecaster_class(self.kind)).parameters) - {
            "task",
            "random_state",
        }
        unknown = sorted(set(self.params) - accepted)
        if unknown:
            raise ValueError(
                f"unknown {self.kind} parameter(s) {unknown}; accepted: {sorted(accepted)}"
            )
        ranges = forecaster_class(self.kind).param_ranges
        problems = [
            f"{key} = {problem}"
            for key, value in self.params.items()
            if key in ranges and (problem := ranges[key].problem(value)) is not None
        ]
        if problems:
            raise ValueError(f"{self.kind} parameter(s) out of range: {'; '.join(problems)}")
        together = forecaster_class(self.kind).params_problem(self.params)
        if together is not None:
            raise ValueError(f"{self.kind} parameters: {together}")
        return self

    @property
    def uses_regimes(self) -> bool:
        return FORECASTERS[self.kind].uses_regimes

    def estimator(
        self, task: Task, seed: int, validation_gap: int, threads: int | None = None
    ) -> Forecaster:
        """The forecaster; ``threads`` caps its CPU threads (``n_jobs``) unless the spec
        sets them, e.g. for several tuning workers sharing the cores."""
        params = dict(self.params)
        cls = forecaster_class(self.kind)
        if threads is not None and "n_jobs" in cls.trainer_params:
            params.setdefault("n_jobs", threads)
        if "validation_gap" in cls.trainer_params:
            params.setdefault("validation_gap", validation_gap)
        if "random_state" in cls.trainer_params:
            params["random_state"] = seed
        return cls(task=task, **params)


class TrustConfig(BaseModel):
    """``[trust]``: when the adapter withholds a prediction besides the training window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # FreqAI's DI_threshold: do_predict = 0 where a row's dissimilarity index (ml.dissimilarity)
    # exceeds it; None: not computed.
    dissimilarity_threshold: float | None = Field(default=None, gt=0.0)
    # FreqAI's expiration_hours: do_predict = 0 for candles more than this many hours
    # after the end of the model's training window (a stale model); None: never
    expiration_hours: float | None = Field(default=None, gt=0.0)


def _freqai_svm_params() -> dict[str, float | int | bool | str]:
    return {"shuffle": False, "nu": 0.01}


class PipelineConfig(BaseModel):
    """``[pipeline]``: FreqAI's data pipeline on the forecaster's inputs, fitted on each
    fold's training rows (:mod:`ml.input_pipeline`). Names as FreqAI's
    ``feature_parameters`` (either spelling of the detectors' keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    weight_factor: float = Field(default=0.0, ge=0.0)  # 0: every training row weighs 1
    principal_component_analysis: bool = False
    use_svm_to_remove_outliers: bool = Field(default=False, alias="use_SVM_to_remove_outliers")
    # SGDOneClassSVM's parameters (FreqAI's default; random_state is the spec's seed)
    svm_params: dict[str, float | int | bool | str] = Field(default_factory=_freqai_svm_params)
    use_dbscan_to_remove_outliers: bool = Field(
        default=False, alias="use_DBSCAN_to_remove_outliers"
    )
    # a detector flagging more than this share (%) of the training rows is not used
    outlier_protection_percentage: float = Field(default=30.0, gt=0.0, le=100.0)
    noise_standard_deviation: float = Field(default=0.0, ge=0.0)

    @field_validator("svm_params")
    @classmethod
    def _svm_params(
        cls, value: dict[str, float | int | bool | str]
    ) -> dict[str, float | int | bool | str]:
        from sklearn.linear_model import SGDOneClassSVM

        accepted = set(SGDOneClassSVM().get_params()) - {"random_state"}
        unknown = sorted(set(value) - accepted)
        if unknown:
            raise ValueError(f"unknown svm_params {unknown}; accepted: {sorted(accepted)}")
        return value


class LifetimeConfig(BaseModel):
    """``[lifetime]``: FreqAI's model-lifetime settings of the same names.

    ``fit_live_predictions_candles``: the forecast's mean and standard deviation over the
    last that many out-of-sample candles (``&-prediction_mean`` / ``_std``, or
    ``&-p_up_mean`` / ``_std``), for thresholds that follow the model's recent range;
    None: the training target's (FreqAI's default, from the training labels).

    ``continual_learning``: each fit starts from the model before it instead of from
    scratch: a walk-forward fold from the fold before (so the folds run in order), the
    final model from the last fold, and a retrain's final model from the champion.
    Boosters add trees to the previous ones; torch models start from its weights.

    ``purge_old_models``: after each registration, versions beyond the newest N that no
    alias points at are deleted with their model files (:func:`ml.registry.purge_old_versions`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fit_live_predictions_candles: int | None = Field(default=None, ge=2, le=100_000)
    continual_learning: bool = False
    # keep this many newest versions of the registered model (and every aliased one);
    # older ones lose their registry entry and model files after each training (their
    # runs stay). None: keep all
    purge_old_models: int | None = Field(default=None, ge=1, le=10_000)


class SizingConfig(BaseModel):
    """``[sizing]``: a regime allocation's exposure sized by forecast volatility
    (:mod:`ml.sizing`): ``exposure * min(cap, target_volatility / forecast)``, held per
    the band and at most daily.

    The forecast is of the annualised volatility of the next ``horizon_days``:

    * ``forecast = "model"``: ``model`` (a regressor; e.g. ``har`` or ``lightgbm``) fitted
      per fold on the same training rows as the regime model, on ``columns`` (features
      of the spec and/or the regime model's ``p_<label>`` columns), against the log
      realised volatility of the next ``horizon_days``, with the held-out log-normal
      correction of a volatility target;
    * ``forecast = "trailing"``: the realised volatility of the last week of daily
      closes (``columns[0]``, a ``realized_volatility`` feature of ``1d`` candles).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_volatility: float = Field(default=DEFAULT_TARGET_VOLATILITY, gt=0.0, le=10.0)
    cap: float = Field(default=DEFAULT_CAP, gt=0.0, le=1.0)  # no leverage
    band: float = Field(default=DEFAULT_BAND, ge=0.0, lt=1.0)
    horizon_days: float = Field(default=7.0, gt=0.0, le=365.0)
    forecast: Literal["model", "trailing"] = "model"
    model: ModelConfig | None = None
    columns: tuple[str, ...] = Field(min_length=1)

    @property
    def budget(self) -> RiskBudget:
        return RiskBudget(self.target_volatility, self.band)

    @model_validator(mode="after")
    def _forecast(self) -> SizingConfig:
        if self.forecast == "model" and self.model is None:
            raise ValueError(
                'sizing: forecast = "model" needs [sizing.model] (e.g. kind = "lightgbm")'
            )
        if self.forecast == "trailing":
            if self.model is not None:
                raise ValueError('sizing: forecast = "trailing" takes no [sizing.model]')
            column = self.columns[0]
            if not (column.startswith("%-realized_volatility_") and column.endswith("_1d")):
                raise ValueError(
                    f"sizing: the trailing forecast reads a realized_volatility feature of 1d "
                    f"candles (e.g. %-realized_volatility_7_1d), got {column!r}"
                )
        return self

    def horizon(self, timeframe: str) -> int:
        """``horizon_days`` in candles of ``timeframe`` (at least one)."""
        return max(1, round(self.horizon_days * 86_400 / timeframe_to_seconds(timeframe)))


class TrainingConfig(BaseModel):
    """Everything about *how* to train, independent of which data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelConfig
    regime: RegimeSettings = HmmRegimeConfig()
    target: TargetSpec = TargetSpec()
    walk_forward: WalkForwardSpec = WalkForwardSpec()
    fee: float = Field(default=0.001, ge=0.0, lt=0.1)  # per side, for the long/flat simulation
    trust: TrustConfig = TrustConfig()
    sizing: SizingConfig | None = None
    pipeline: PipelineConfig | None = None
    lifetime: LifetimeConfig = LifetimeConfig()

    @model_validator(mode="after")
    def _sized_allocation(self) -> TrainingConfig:
        check_sizing(self.model, self.sizing)
        check_pipeline(self.model, self.pipeline)
        check_lifetime(self.model, self.pipeline, self.lifetime)
        return self

    @property
    def chains_folds(self) -> bool:
        """Does each walk-forward fold start from the fold before (the regime model's warm
        start, or continual learning)? Then the folds run in order, not side by side."""
        return self.regime.chains_folds or self.lifetime.continual_learning


def check_pipeline(model: ModelConfig, pipeline: PipelineConfig | None) -> None:
    """``weight_factor`` only with a model that trains on weighted rows."""
    if pipeline is None or pipeline.weight_factor == 0:
        return
    if not forecaster_class(model.kind).accepts_sample_weight:
        weighted = sorted(k for k in FORECASTERS if forecaster_class(k).accepts_sample_weight)
        raise ValueError(
            f"[pipeline] weight_factor weights training rows; model kind {model.kind!r} "
            f"does not take row weights (kinds that do: {', '.join(weighted)})"
        )


def check_lifetime(
    model: ModelConfig, pipeline: PipelineConfig | None, lifetime: LifetimeConfig
) -> None:
    """``continual_learning`` only with a model that can continue, on stable inputs."""
    if not lifetime.continual_learning:
        return
    if not forecaster_class(model.kind).continues_training:
        able = sorted(k for k in FORECASTERS if forecaster_class(k).continues_training)
        raise ValueError(
            f"[lifetime] continual_learning: model kind {model.kind!r} cannot continue from "
            f"a previous model (kinds that can: {', '.join(able)})"
        )
    if pipeline is not None and pipeline.principal_component_analysis:
        raise ValueError(
            "[lifetime] continual_learning with [pipeline] principal_component_analysis: "
            "each fit has other components, so a model cannot continue from the one before"
        )


def check_sizing(model: ModelConfig, sizing: SizingConfig | None) -> None:
    """``[sizing]`` only with a model whose output is an exposure."""
    if sizing is not None and not forecaster_class(model.kind).outputs_exposure:
        raise ValueError(
            f"[sizing] sizes a regime allocation's exposure; model kind {model.kind!r} "
            'has none (use kind = "regime_allocation")'
        )
