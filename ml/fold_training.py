"""Walk-forward evaluation: fit a bundle per fold, predict its test block, score it.

Scores per fold and over the stitched out-of-sample predictions of all folds:
forecast metrics (accuracy, log-loss, Brier for classifiers; RMSE, rank IC for
regressors) and a long/flat simulation after fees, with the naive baselines
(always long; sign of the last return) on exactly the same candles. A volatility
target is scored as a forecast of risk instead (:func:`risk_scores`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np
import pandas as pd

from common.executors import Executor
from common.layout import pair_to_filename
from features.candles import DataWindow, data_window
from features.feature_spec import FeatureSpec
from features.timeframes import timeframe_to_seconds
from ml.baselines import FloatArray, rule_positions
from ml.bundle import Continuation, ModelBundle, fit_bundle
from ml.config import TrainingConfig
from ml.metrics import (
    baseline_positions,
    classification_metrics,
    long_flat,
    median_run_days,
    not_annualised,
    periods_per_year,
    regression_metrics,
)
from ml.models import forecaster_class
from ml.models.allocation import DEFAULT_EXPOSURES
from ml.pooled import PairData, fit_pooled_bundle, pooled_window
from ml.sizing import DEFAULT_RISK_BUDGET, held_exposure
from ml.targets import make_target
from ml.volatility import risk_baselines, risk_metrics
from ml.walkforward import Fold, make_folds


def positions_from(
    predictions: pd.DataFrame, task: str, fractional: bool = False, band: float = 0.0
) -> np.ndarray:
    """Long (1) / flat (0) from a prediction frame: long when up is predicted;
    ``fractional``: the share of equity in ``exposure`` (a regime allocation's); a sized
    allocation (``exposure_unsized`` beside it) holds its ``exposure`` by the
    rebalancing rule of :mod:`ml.sizing` with ``band``."""
    if fractional and "exposure_unsized" in predictions.columns:
        return held_exposure(
            predictions["exposure"].to_numpy(dtype="float64"),
            predictions["exposure_unsized"].to_numpy(dtype="float64"),
            predictions["date"],
            band,
        )
    if fractional:
        return predictions["exposure"].to_numpy(dtype="float64")
    prediction = predictions["prediction"].to_numpy(dtype="float64")
    if task == "classification":
        return np.where(np.isfinite(prediction), prediction, np.nan)
    return np.where(np.isfinite(prediction), (prediction > 0).astype("float64"), np.nan)


def _regime_days(predictions: pd.DataFrame, candles: pd.DataFrame) -> dict[str, float]:
    """``regime_median_days`` when the predictions carry a regime decision."""
    if "regime" not in predictions.columns:
        return {}
    dates = candles["date"].to_numpy(dtype="datetime64[ns]")[predictions.index.to_numpy()]
    return {"regime_median_days": median_run_days(predictions["regime"].to_numpy(), dates)}


@dataclass
class Scores:
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)


def candle_baselines(
    candles: pd.DataFrame, config: TrainingConfig, timeframe: str
) -> dict[str, FloatArray]:
    """The baselines :func:`score` sets beside a model, one value per row of ``candles``
    (each from the candles up to it): for a risk target the classical volatility
    forecasts (:func:`ml.volatility.risk_baselines`), else the daily trend rules and
    their sized versions (:func:`ml.baselines.rule_positions`, with the spec's risk
    budget). A training job computes them once per market for all its folds."""
    if config.target.is_risk:
        return risk_baselines(
            candles["close"],
            config.target.horizon,
            periods_per_year(timeframe),
            86_400 / timeframe_to_seconds(timeframe),
            downside=config.target.kind == "downside_volatility",
        )
    budget = config.sizing.budget if config.sizing is not None else DEFAULT_RISK_BUDGET
    return rule_positions(candles, timeframe, *budget)


def score(
    predictions: pd.DataFrame,
    candles: pd.DataFrame,
    config: TrainingConfig,
    timeframe: str,
    baselines: Mapping[str, FloatArray] | None = None,
) -> Scores:
    """Score predictions (indexed like ``candles``) against the target and the baselines,
    all on the same candles and fees: always long (buy and hold), long after a rising
    candle, the daily trend rules of :mod:`ml.baselines` and, when the predictions carry
    a regime decision, the regime-only allocation (the decided regime's exposure in
    :data:`DEFAULT_EXPOSURES`; an unnamed regime is flat); for a sized allocation, the
    same allocation unsized (``allocation_unsized``).
    ``drawdown_vs_buy_hold`` is each one's max drawdown over always long's. Forecast
    metrics only for a model that forecasts (``Forecaster.forecasts``): a regime
    allocation's exposure is no probability, and its log loss would mean nothing.
    ``baselines``: :func:`candle_baselines` of ``candles``, when the caller has them."""
    if baselines is None:
        baselines = candle_baselines(candles, config, timeframe)
    if config.target.is_risk:
        return risk_scores(predictions, candles, config, timeframe, baselines)
    rows = predictions.index.to_numpy()
    target = make_target(candles, config.target).to_numpy()[rows]
    close = candles["close"].to_numpy(dtype="float64")
    one_candle = np.r_[np.nan, np.diff(np.log(close))][rows]
    per_year = periods_per_year(timeframe)
    forecasts = forecaster_class(config.model.kind).forecasts
    metrics: dict[str, float] = {}
    if forecasts and config.target.task == "classification":
        metrics = classification_metrics(target, predictions["p_up"].to_numpy(dtype="float64"))
    elif forecasts:
        metrics = regression_metrics(target, predictions["prediction"].to_numpy(dtype="float64"))
    budget = config.sizing.budget if config.sizing is not None else DEFAULT_RISK_BUDGET
    positions = positions_from(
        predictions,
        config.target.task,
        fractional=forecaster_class(config.model.kind).outputs_exposure,
        band=budget.band,
    )
    metrics.update(long_flat(positions, one_candle, fee=config.fee, periods_per_year=per_year))
    metrics |= _regime_days(predictions, candles)
    candidates = baseline_positions(one_candle)
    candidates.update({name: values[rows] for name, values in baselines.items()})
    if "exposure_unsized" in predictions.columns:  # a sized allocation: what sizing adds
        unsized = predictions["exposure_unsized"].to_numpy(dtype="float64")
        candidates["allocation_unsized"] = unsized
    if "regime" in predictions.columns:  # the regime decision's exposure, nothing else
        regime_only = predictions["regime"].map(DEFAULT_EXPOSURES).fillna(0.0)
        candidates["regime_only"] = np.asarray(regime_only, dtype="float64")
    scored = {}
    for name, baseline in candidates.items():
        result = long_flat(baseline, one_candle, fee=config.fee, periods_per_year=per_year)
        if forecasts and config.target.task == "classification":
            result["accuracy"] = classification_metrics(target, baseline)["accuracy"]
        scored[name] = result
    hold = scored["always_long"]["max_drawdown"]
    for result in (metrics, *scored.values()):
        result["drawdown_vs_buy_hold"] = result["max_drawdown"] / hold if hold > 0 else 0.0
    return Scores(metrics, scored)


def risk_scores(
    predictions: pd.DataFrame,
    candles: pd.DataFrame,
    config: TrainingConfig,
    timeframe: str,
    classical: Mapping[str, FloatArray],
) -> Scores:
    """A volatility forecast against the classical ones (:func:`ml.volatility.risk_baselines`:
    trailing, EWMA, HAR-RV) on the same rows: those where the target and every forecast
    are known. QLIKE and MSE of log volatility, and each QLIKE over HAR-RV's
    (``qlike_vs_har_rv``: below 1 beats it). A forecast of risk is not traded on its sign:
    no trading measures here (the sizing that uses it is judged where it trades).
    ``classical``: those forecasts over all of ``candles`` (:func:`candle_baselines`)."""
    rows = predictions.index.to_numpy()
    target = make_target(candles, config.target).to_numpy()[rows]
    forecasts = {"model": predictions["prediction"].to_numpy(dtype="float64")}
    forecasts |= {name: values[rows] for name, values in classical.items()}
    known = np.isfinite(target) & np.all([np.isfinite(f) for f in forecasts.values()], axis=0)
    measured = {name: risk_metrics(target[known], f[known]) for name, f in forecasts.items()}
    har = measured["har_rv"]["qlike"]
    for values in measured.values():
        values["qlike_vs_har_rv"] = values["qlike"] / har if har > 0 else float("nan")
    metrics = measured.pop("model")
    metrics |= _regime_days(predictions, candles)
    return Scores(metrics, measured)


def combined(per_market: dict[str, Scores]) -> Scores:
    """The scores of several markets' predictions as one: each metric's mean over the
    markets (``<name>``) and each market's own (``<BASE>_<QUOTE>.<name>``); each
    baseline's mean. One market: its scores, unchanged."""
    if len(per_market) == 1:
        return next(iter(per_market.values()))
    first = next(iter(per_market.values()))
    metrics = {
        name: _mean([s.metrics[name] for s in per_market.values()]) for name in first.metrics
    }
    for pair, scores in per_market.items():
        metrics.update({f"{pair_to_filename(pair)}.{k}": v for k, v in scores.metrics.items()})
    baselines = {
        name: {key: _mean([s.baselines[name][key] for s in per_market.values()]) for key in values}
        for name, values in first.baselines.items()
    }
    return Scores(metrics, baselines)


def _mean(values: list[float]) -> float:
    """The mean over the values that are not NaN; NaN when none is finite."""
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


@dataclass(frozen=True)
class TrainingJob:
    """What every fit of one training run shares: the markets, their features, the config.

    One market: a single-pair model (:func:`ml.bundle.fit_bundle`); several: one pooled
    model over all of them (:func:`ml.pooled.fit_pooled_bundle`). Folds are cut on the
    markets' common calendar (every candle time of any market; one market's own dates),
    so each fold trains on every market's candles before its test block."""

    name: str
    markets: tuple[PairData, ...]
    feature_spec: FeatureSpec
    config: TrainingConfig
    timeframe: str
    seed: int
    threads: int | None = None  # CPU threads per fit (None: the forecaster's default)

    @classmethod
    def single(
        cls,
        *,
        name: str,
        candles: pd.DataFrame,
        features: pd.DataFrame,
        feature_spec: FeatureSpec,
        config: TrainingConfig,
        pair: str,
        timeframe: str,
        seed: int,
        threads: int | None = None,
    ) -> TrainingJob:
        market = PairData(pair, candles, features)
        return cls(name, (market,), feature_spec, config, timeframe, seed, threads)

    @property
    def pooled(self) -> bool:
        return len(self.markets) > 1

    @property
    def market(self) -> PairData:
        """The one market of a single-pair job."""
        if self.pooled:
            raise ValueError(f"{self.name} pools {len(self.markets)} markets: name one")
        return self.markets[0]

    @property
    def candles(self) -> pd.DataFrame:
        return self.market.candles

    @property
    def features(self) -> pd.DataFrame:
        return self.market.features

    @property
    def pair(self) -> str:
        return self.market.pair

    @cached_property
    def calendar(self) -> np.ndarray:
        """Every candle time of any market (datetime64[ns]), ascending."""
        dates = [m.candles["date"].to_numpy(dtype="datetime64[ns]") for m in self.markets]
        return dates[0] if not self.pooled else np.unique(np.concatenate(dates))

    @cached_property
    def baselines(self) -> dict[str, dict[str, FloatArray]]:
        """Each market's :func:`candle_baselines`, computed once for every fold's scores."""
        return {
            m.pair: candle_baselines(m.candles, self.config, self.timeframe) for m in self.markets
        }

    @cached_property
    def window(self) -> DataWindow:
        """The data window of every candle the run reads (its sha256 is the run's data's)."""
        return self.window_of(self.rows(0, len(self.calendar)))

    def window_of(self, rows: dict[str, slice]) -> DataWindow:
        if not self.pooled:
            return data_window(self.candles.iloc[rows[self.pair]], self.pair, self.timeframe)
        return pooled_window(list(self.markets), rows, self.timeframe)

    def folds(self) -> list[Fold]:
        """The walk-forward folds, as rows of :attr:`calendar`."""
        config = self.config
        per_day = 86_400 / timeframe_to_seconds(self.timeframe)
        return make_folds(
            len(self.calendar), config.walk_forward, config.target.horizon, per_day, self.calendar
        )

    def rows(self, first: int, stop: int) -> dict[str, slice]:
        """Each market's rows whose candle lies in ``calendar[first:stop]``."""
        if not self.pooled:
            return {self.pair: slice(first, stop)}
        start, end = self.calendar[first], self.calendar[stop - 1]
        out = {}
        for market in self.markets:
            dates = market.candles["date"].to_numpy(dtype="datetime64[ns]")
            out[market.pair] = slice(
                int(np.searchsorted(dates, start, "left")),
                int(np.searchsorted(dates, end, "right")),
            )
        return out

    def final_rows(self) -> dict[str, slice]:
        """Every market's candles whose target is known: what the registered model fits."""
        horizon = self.config.target.horizon
        return {m.pair: slice(0, len(m.candles) - horizon) for m in self.markets}

    def fit(
        self,
        rows: dict[str, slice],
        previous: ModelBundle | None = None,
        first_choice: Continuation | None = None,
    ) -> ModelBundle:
        """A bundle fitted on each market's ``rows`` (its training window is recorded in
        the bundle); ``previous``: the bundle of the fold before, whose regime model may
        warm-start this one's (``[regime] warm_start``) and whose forecaster this one's
        may continue (``[lifetime] continual_learning``); ``first_choice``: a forecaster
        to continue before that one (a retrain's champion)."""
        regimes = previous.regime_model if previous is not None else None
        candidates: list[Continuation] = []
        if self.config.lifetime.continual_learning:
            if first_choice is not None:
                candidates.append(first_choice)
            if previous is not None:
                candidates.append((previous.forecaster, "the fold before"))
        if self.pooled:
            return fit_pooled_bundle(
                name=self.name,
                data=list(self.markets),
                rows=rows,
                feature_spec=self.feature_spec,
                config=self.config,
                seed=self.seed,
                timeframe=self.timeframe,
                data_sha256=self.window.sha256,
                threads=self.threads,
                previous=regimes,
                continue_from=candidates,
            )
        return fit_bundle(
            name=self.name,
            candles=self.candles,
            features=self.features,
            rows=rows[self.pair],
            feature_spec=self.feature_spec,
            config=self.config,
            train_window=self.window_of(rows),
            data_sha256=self.window.sha256,
            seed=self.seed,
            pair=self.pair,
            timeframe=self.timeframe,
            threads=self.threads,
            previous=regimes,
            continue_from=candidates,
        )

    def predict(self, bundle: ModelBundle, market: PairData, rows: slice) -> pd.DataFrame:
        """One market's predictions for ``rows``, in one batched causal pass over the
        history up to their end (the regime filter and sequences need what came before)."""
        bound = bundle.for_pair(market.pair)
        features = bound.scaled(market.features.iloc[: rows.stop])
        return bound.predict_features(features).iloc[rows]

    def score(self, predictions: dict[str, pd.DataFrame]) -> dict[str, Scores]:
        """Each market's predictions scored beside the baselines on its own candles."""
        candles = {m.pair: m.candles for m in self.markets}
        return {
            pair: score(frame, candles[pair], self.config, self.timeframe, self.baselines[pair])
            for pair, frame in predictions.items()
        }


class MarketFold(NamedTuple):
    """One market's share of a fold: its test rows' predictions and their scores (a
    fold's own figures: not annualised, see :func:`ml.metrics.not_annualised`)."""

    predictions: pd.DataFrame
    scores: Scores


@dataclass
class FoldResult:
    """One fitted fold: its bundle and, per market, what it predicted and scored."""

    fold: Fold
    bundle: ModelBundle
    train_window: DataWindow
    test_window: DataWindow
    per_market: dict[str, MarketFold]

    @property
    def predictions(self) -> pd.DataFrame:
        """The test rows' predictions of a single-pair job."""
        first, *more = self.per_market.values()
        if more:
            raise ValueError("a pooled fold has predictions per market: read per_market")
        return first.predictions

    @property
    def scores(self) -> Scores:
        return combined({pair: market.scores for pair, market in self.per_market.items()})

    @property
    def metrics(self) -> dict[str, float]:
        return self.scores.metrics


@dataclass(frozen=True)
class FoldJob:
    """One fit of a walk-forward: a plain, picklable value with no hidden state, so an
    executor may run it in another process. ``previous`` is the bundle of the fold before
    it (``[regime] warm_start``, ``[lifetime] continual_learning``): with it, a job's folds
    form a chain and run in order; markets and jobs do not depend on each other."""

    job: TrainingJob
    fold: Fold
    previous: ModelBundle | None = None

    def run(self) -> FoldResult:
        job, fold = self.job, self.fold
        bundle = job.fit(job.rows(fold.train_start, fold.train_end), self.previous)
        tested = job.rows(fold.test_start, fold.test_end)
        per_market = {}
        for market in job.markets:
            predictions = job.predict(bundle, market, tested[market.pair])
            scores = score(
                predictions, market.candles, job.config, job.timeframe, job.baselines[market.pair]
            )
            fold_scores = Scores(
                not_annualised(scores.metrics),
                {name: not_annualised(values) for name, values in scores.baselines.items()},
            )
            per_market[market.pair] = MarketFold(predictions, fold_scores)
        return FoldResult(
            fold=fold,
            bundle=bundle,
            train_window=bundle.metadata.train_window,
            test_window=job.window_of(tested),
            per_market=per_market,
        )


def walk_forward(job: TrainingJob, executor: Executor | None = None) -> Iterator[FoldResult]:
    """Yield one :class:`FoldResult` per fold, in time order. Independent folds are jobs
    of ``executor`` when one is given; folds whose regime model warm-starts from the fold
    before (``[regime] warm_start``, ``[lifetime] continual_learning``) form a chain and
    run in order, here."""
    if executor is not None and not job.config.chains_folds:
        yield from executor.run_all([FoldJob(job, fold) for fold in job.folds()])
        return
    previous: ModelBundle | None = None
    for fold in job.folds():
        result = FoldJob(job, fold, previous).run()
        previous = result.bundle
        yield result


def fit_final(
    job: TrainingJob, previous: ModelBundle | None = None, first_choice: Continuation | None = None
) -> ModelBundle:
    """The bundle to register: fitted on every candle whose target is known; ``previous``
    (the last walk-forward fold) may warm-start its regime model and, with continual
    learning, its forecaster, after ``first_choice`` (a retrain's champion)."""
    return job.fit(job.final_rows(), previous, first_choice)
