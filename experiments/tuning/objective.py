"""The tuning objective: one trial = one walk-forward run of a trial's spec, scored per fold.

The data window of the spec is split once: the first ``1 - test_fraction`` of
the candles are the *tuning window* (the walk-forward folds live inside it), the
rest is the *test window*, which no trial ever sees; it is scored once, at the
end, by the refitted best trial (:func:`score_test`).

After each fold the trial's metrics are computed over the out-of-sample rows of
all folds so far (stitched, in time order) and reported to Optuna as the
intermediate value at step = fold index, so a pruner can stop a poor trial after
its first folds. Strategy metrics come from the replay of the ``[backtest]``
strategy (:mod:`strategies.replay`), forecast metrics from :func:`ml.fold_training.score`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd

from common.errors import DataError, SpecError
from common.layout import UserDir
from experiments.spec import ExperimentSpec
from experiments.spec_data import cached_features, spec_candles
from experiments.tuning.space import (
    STRATEGY_OBJECTIVES,
    Distribution,
    FloatRange,
    IntRange,
    TuneConfig,
    strategy_values,
)
from features.feature_spec import FeatureSpec
from features.timeframes import timeframe_to_seconds
from ml.bundle import ModelBundle
from ml.fold_training import TrainingJob, score, walk_forward
from ml.metrics import MIN_ANNUALISED_DAYS, long_enough_to_annualise
from ml.models import forecaster_class
from ml.walkforward import make_folds
from strategies.catalogue import introspect
from strategies.install import install_strategies
from strategies.params import StrategyParams, default_params, tunable_names, with_values
from strategies.replay import replay, shipped_composition

FORECAST_METRICS = {
    "classification": ("accuracy", "log_loss", "brier"),
    "regression": ("rmse", "rank_ic", "accuracy"),
}
RISK_METRICS = ("qlike", "mse_log_vol", "qlike_vs_har_rv")


def forecast_metric_names(spec: ExperimentSpec) -> tuple[str, ...]:
    """What a spec's forecasts are judged by: a volatility target by its losses."""
    return RISK_METRICS if spec.target.is_risk else FORECAST_METRICS[spec.target.task]


# what a trial's trading is summed up by (and buy and hold's beside it)
TRADING_MEASURES = ("total_return", "max_drawdown", "calmar", "return_over_drawdown")
# Objectives that annualise (ml.metrics: NaN over fewer than MIN_ANNUALISED_DAYS days)
ANNUALISED_OBJECTIVES = ("sharpe",)
# Called after each fold with (fold index, metrics so far); may raise optuna.TrialPruned.
FoldCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TuningData:
    """The candles of a spec, split into tuning and test windows, with features per spec."""

    spec: ExperimentSpec
    candles: pd.DataFrame  # the whole data window: tuning + test
    tuning_rows: int
    layout: UserDir
    _features: dict[str, pd.DataFrame] = field(default_factory=dict)

    @classmethod
    def load(cls, spec: ExperimentSpec, tune: TuneConfig, layout: UserDir) -> TuningData:
        data = spec.data
        candles = spec_candles(data, layout)
        test_rows = int(len(candles) * tune.test_fraction)
        tuning_rows = len(candles) - test_rows
        if tuning_rows < 500 or test_rows < 50:
            raise DataError(
                f"{len(candles)} {data.pair} {data.timeframe} candles in timerange "
                f"{data.timerange or '(all)'} leave {tuning_rows} for tuning and {test_rows} for the test",
                hint="import more data or widen --timerange (at least 500 tuning and 50 test candles)",
            )
        return cls(spec=spec, candles=candles, tuning_rows=tuning_rows, layout=layout)

    @property
    def tuning_candles(self) -> pd.DataFrame:
        return self.candles.iloc[: self.tuning_rows]

    @property
    def test_candles(self) -> pd.DataFrame:
        return self.candles.iloc[self.tuning_rows :]

    def features(self, spec: FeatureSpec) -> pd.DataFrame:
        """Features of the whole window (causal: its first rows equal the tuning window's own)."""
        if spec.hash not in self._features:
            data = self.spec.data
            spec.check_timeframe(data.timeframe)
            self._features[spec.hash] = cached_features(
                self.candles, spec, self.layout, data.pair, data.timeframe, data.exchange
            )
        return self._features[spec.hash]

    def job(self, spec: ExperimentSpec, threads: int | None = None) -> TrainingJob:
        """The training job of a trial: the tuning window only."""
        return TrainingJob.single(
            name=spec.name,
            candles=self.tuning_candles,
            features=self.features(spec.feature_spec).iloc[: self.tuning_rows],
            feature_spec=spec.feature_spec,
            config=spec.training,
            pair=spec.data.pair,
            timeframe=spec.data.timeframe,
            seed=spec.seed,
            threads=threads,
        )

    def windows(self) -> dict[str, str]:
        """First and last candle of the tuning and test windows (ISO, UTC)."""
        tuning, test = self.tuning_candles["date"], self.test_candles["date"]
        return {
            "tuning.first": tuning.iloc[0].isoformat(),
            "tuning.last": tuning.iloc[-1].isoformat(),
            "test.first": test.iloc[0].isoformat(),
            "test.last": test.iloc[-1].isoformat(),
        }


def strategy_defaults(spec: ExperimentSpec, layout: UserDir) -> StrategyParams:
    """The ``[backtest] strategy``'s declared values, read where Freqtrade will load it
    (``<userdir>/strategies``, where the shipped strategies are installed beside yours)."""
    name = spec.backtest.strategy
    install_strategies(layout)
    strategy_dir = layout.strategies
    for info in introspect(strategy_dir):
        if info.name == name:
            return default_params(info)
    raise SpecError(
        f"strategy {name!r} ([backtest] strategy) not found in {strategy_dir}",
        hint="strategies live in user_data/strategies/",
    )


def declared_space(spec: ExperimentSpec, layout: UserDir) -> dict[str, Distribution]:
    r"""The tuning ranges the ``[backtest]`` strategy's blocks declare (``strategy_parameters =
    "declared"``): the same declaration Freqtrade's ``*Parameter``\s are made from."""
    composition = strategy_defaults(spec, layout).composition
    if composition is None:
        raise SpecError(
            f"strategy_parameters = 'declared': {spec.backtest.strategy} is not composed from blocks",
            hint="list its parameters in [tune.space] instead",
        )
    space: dict[str, Distribution] = {}
    for param in composition.params():
        if param.decimals is None:
            space[param.name] = IntRange(type="int", low=int(param.low), high=int(param.high))
        else:
            step = 10.0**-param.decimals
            space[param.name] = FloatRange(type="float", low=param.low, high=param.high, step=step)
    return space


def check_tuning(spec: ExperimentSpec, tune: TuneConfig, defaults: StrategyParams) -> None:
    """Refuse, before any trial, what no trial could do."""
    task = spec.target.task
    forecasts = forecaster_class(spec.model.kind).forecasts
    applicable = forecast_metric_names(spec) if forecasts else ()
    for name in tune.objectives:
        if name not in STRATEGY_OBJECTIVES and name not in applicable:
            what = f"a {task} target" if forecasts else f"a {spec.model.kind} model (no forecast)"
            raise SpecError(
                f"objective {name!r} does not apply to {what}",
                hint=f"use one of {[*STRATEGY_OBJECTIVES, *applicable]}",
            )
    if tune.uses_strategy:
        composition = defaults.composition or shipped_composition(defaults.strategy)
        reads_p_up = {"model_probability", "model_turn"} & set(composition.entry + composition.exit)
        if reads_p_up and task != "classification":
            raise SpecError(
                f"{defaults.strategy} trades on p_up ({', '.join(sorted(reads_p_up))}): "
                "tune it with a direction target ([target] kind)"
            )
        known = tunable_names(defaults)
        for name in strategy_values(tune.examples()):
            if name not in known and not name.startswith("roi."):
                raise SpecError(
                    f"space key 'strategy.{name}': {defaults.strategy} has no such value",
                    hint=f"tunable: {sorted(known)} and roi.<minutes>",
                )
            if name.startswith("roi.") and not name.removeprefix("roi.").isdigit():
                raise SpecError(f"space key 'strategy.{name}': ROI keys are roi.<minutes>")
            _check_decimals(name, tune.space[f"strategy.{name}"], defaults)
    # Every key must give a valid spec / strategy (shown with each range's low end).
    try:
        spec.with_params(tune.examples())
        with_values(defaults, strategy_values(tune.examples()))
    except SpecError as exc:
        raise SpecError(f"[tune.space]: {exc}") from exc


def _check_decimals(name: str, distribution: Distribution, defaults: StrategyParams) -> None:
    """Freqtrade rounds a DecimalParameter to its decimals when it loads the parameter file:
    a finer step would tune values that Freqtrade never trades."""
    decimals = defaults.decimals.get(name)
    if decimals is None:
        return
    unit = 10.0**-decimals
    step = getattr(distribution, "step", None)
    fits = (
        isinstance(distribution, FloatRange)
        and step is not None
        and step >= unit - 1e-12
        and abs(step / unit - round(step / unit)) < 1e-9
        and abs(distribution.low / unit - round(distribution.low / unit)) < 1e-9
    )
    if not fits:
        raise SpecError(
            f"space key 'strategy.{name}': {defaults.strategy} declares it with {decimals} "
            "decimals and Freqtrade rounds it to them",
            hint=f"use a float range with low and step multiples of {unit:g}, e.g. step = {unit:g}",
        )


def evaluate(
    predictions: pd.DataFrame,
    candles: pd.DataFrame,
    spec: ExperimentSpec,
    strategy: StrategyParams | None,
) -> dict[str, float]:
    """Forecast and trading metrics of ``predictions`` (indexed like ``candles``,
    contiguous rows), and buy and hold's on the same candles (``baseline.always_long.*``,
    which the promotion gate compares with). Trading metrics come from the replayed
    strategy, without one from holding the model's own positions after fees."""
    scores = score(predictions, candles, spec.training, spec.data.timeframe)
    forecast = scores.metrics
    metrics = {k: forecast[k] for k in forecast_metric_names(spec) if k in forecast}
    if strategy is not None:
        result = replay(candles, predictions, strategy, fee=spec.fee, timeframe=spec.data.timeframe)
        metrics.update(result.metrics)
    else:
        metrics.update({k: forecast[k] for k in TRADING_MEASURES if k in forecast})
    hold = scores.baselines.get("always_long", {})
    metrics.update({f"baseline.always_long.{k}": hold[k] for k in TRADING_MEASURES if k in hold})
    har = scores.baselines.get("har_rv", {})  # what a risk forecast is judged against
    metrics.update({f"baseline.har_rv.{k}": har[k] for k in RISK_METRICS if k in har})
    return metrics


@dataclass(frozen=True)
class TrialOutcome:
    metrics: dict[str, float]
    fits: int


def run_trial(
    data: TuningData,
    spec: ExperimentSpec,
    strategy: StrategyParams | None,
    on_fold: FoldCallback,
    threads: int | None = None,
) -> TrialOutcome:
    """Walk forward over the tuning window; ``on_fold`` sees the metrics after each fold."""
    job = data.job(spec, threads)
    stitched: list[pd.DataFrame] = []
    metrics: dict[str, float] = {}
    fits = 0
    for result in walk_forward(job):
        fits += 1
        stitched.append(result.predictions)
        metrics = evaluate(pd.concat(stitched), job.candles, spec, strategy)
        on_fold(result.fold.index, metrics)
    return TrialOutcome(metrics, fits)


def objective_values(metrics: dict[str, float], tune: TuneConfig) -> list[float]:
    values = [metrics.get(name, float("nan")) for name in tune.objectives]
    if not all(np.isfinite(values)):
        raise ValueError(f"objective {tune.objectives} is not finite: {values}")
    return values


def folds_of(data: TuningData, spec: ExperimentSpec, tune: TuneConfig) -> int:
    """The number of folds, after checking that they fit in the tuning window and that
    their out-of-sample candles span enough days for an annualised objective."""
    try:
        per_day = 86_400 / timeframe_to_seconds(spec.data.timeframe)
        folds = make_folds(data.tuning_rows, spec.walk_forward, spec.target.horizon, per_day)
    except ValueError as exc:
        raise SpecError(f"[walk_forward] in the tuning window: {exc}") from exc
    annualised = [name for name in tune.objectives if name in ANNUALISED_OBJECTIVES]
    days = sum(fold.test_end - fold.test_start for fold in folds) / per_day
    if annualised and not long_enough_to_annualise(days):
        raise SpecError(
            f"objective {annualised[0]!r} is annualised, and the {len(folds)} folds' "
            f"out-of-sample candles span {days:.0f} days: at least "
            f"{MIN_ANNUALISED_DAYS:.0f} are needed for it to mean anything",
            hint="widen [walk_forward] test_size or the data window, or tune profit_total",
        )
    return len(folds)


def score_test(
    data: TuningData, bundle: ModelBundle, spec: ExperimentSpec, strategy: StrategyParams | None
) -> dict[str, float]:
    """Metrics of ``bundle`` on the test window: predicted causally from the whole history,
    scored on the test rows only."""
    features = data.features(spec.feature_spec)
    predictions = bundle.predict_features(features).iloc[data.tuning_rows :]
    return evaluate(predictions, data.candles, spec, strategy)


def suggest_trial(
    trial: optuna.Trial, spec: ExperimentSpec, tune: TuneConfig, defaults: StrategyParams
) -> tuple[dict[str, Any], ExperimentSpec, StrategyParams | None]:
    params = tune.suggest(trial)
    trial_spec = spec.with_params(params)
    strategy = with_values(defaults, strategy_values(params)) if tune.uses_strategy else None
    return params, trial_spec, strategy
