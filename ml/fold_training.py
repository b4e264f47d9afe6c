"""Walk-forward evaluation: fit a bundle per fold, predict its test block, score it.

Scores per fold and over the stitched out-of-sample predictions of all folds:
forecast metrics (accuracy, log-loss, Brier for classifiers; RMSE, rank IC for
regressors) and a long/flat simulation after fees, with the naive baselines
(always long; sign of the last return) on exactly the same candles. A volatility
target is scored as a forecast of risk instead (:func:`risk_scores`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.candles import DataWindow, data_window
from features.feature_spec import FeatureSpec
from features.timeframes import timeframe_to_seconds
from ml.baselines import rule_positions
from ml.bundle import ModelBundle, fit_bundle
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
from ml.sizing import DEFAULT_BAND, DEFAULT_TARGET_VOLATILITY, held_exposure
from ml.targets import make_target
from ml.volatility import risk_baselines, risk_metrics
from ml.walkforward import Fold, make_folds


def positions_from(
    predictions: pd.DataFrame, task: str, fractional: bool = False, band: float = 0.0
) -> np.ndarray:
    """Long (1) / flat (0) from a prediction frame: long when up is predicted;
    ``fractional``: the share of equity ``p_up`` (a regime allocation's exposure); a
    sized allocation (an ``exposure`` column beside) holds its ``p_up`` by the
    rebalancing rule of :mod:`ml.sizing` with ``band``."""
    if fractional and "exposure" in predictions.columns:
        return held_exposure(
            predictions["p_up"].to_numpy(dtype="float64"),
            predictions["exposure"].to_numpy(dtype="float64"),
            predictions["date"],
            band,
        )
    if fractional:
        return predictions["p_up"].to_numpy(dtype="float64")
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
class FoldResult:
    fold: Fold
    bundle: ModelBundle
    train_window: DataWindow
    test_window: DataWindow
    predictions: pd.DataFrame  # test rows only
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]


@dataclass
class Scores:
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)


def score(
    predictions: pd.DataFrame, candles: pd.DataFrame, config: TrainingConfig, timeframe: str
) -> Scores:
    """Score predictions (indexed like ``candles``) against the target and the baselines,
    all on the same candles and fees: always long (buy and hold), long after a rising
    candle, the daily trend rules of :mod:`ml.baselines` and, when the predictions carry
    a regime decision, the regime-only allocation (the decided regime's exposure in
    :data:`DEFAULT_EXPOSURES`; an unnamed regime is flat); for a sized allocation, the
    same allocation unsized (``allocation_unsized``).
    ``drawdown_vs_buy_hold`` is each one's max drawdown over always long's. Forecast
    metrics only for a model that forecasts (``Forecaster.forecasts``): a regime
    allocation's exposure is no probability, and its log loss would mean nothing."""
    if config.target.is_risk:
        return risk_scores(predictions, candles, config, timeframe)
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
    target_volatility, band = (
        (config.sizing.target_volatility, config.sizing.band)
        if config.sizing is not None
        else (DEFAULT_TARGET_VOLATILITY, DEFAULT_BAND)
    )
    positions = positions_from(
        predictions,
        config.target.task,
        fractional=forecaster_class(config.model.kind).outputs_exposure,
        band=band,
    )
    metrics.update(long_flat(positions, one_candle, fee=config.fee, periods_per_year=per_year))
    metrics |= _regime_days(predictions, candles)
    candidates = baseline_positions(one_candle)
    candidates.update(
        {
            name: values[rows]
            for name, values in rule_positions(candles, timeframe, target_volatility, band).items()
        }
    )
    if "exposure" in predictions.columns:  # a sized allocation: what sizing adds to it
        candidates["allocation_unsized"] = predictions["exposure"].to_numpy(dtype="float64")
    if "regime" in predictions.columns:  # the regime decision's exposure, nothing else
        regime_only = predictions["regime"].map(DEFAULT_EXPOSURES).fillna(0.0)
        candidates["regime_only"] = np.asarray(regime_only, dtype="float64")
    baselines = {}
    for name, baseline in candidates.items():
        result = long_flat(baseline, one_candle, fee=config.fee, periods_per_year=per_year)
        if forecasts and config.target.task == "classification":
            result["accuracy"] = classification_metrics(target, baseline)["accuracy"]
        baselines[name] = result
    hold = baselines["always_long"]["max_drawdown"]
    for result in (metrics, *baselines.values()):
        result["drawdown_vs_buy_hold"] = result["max_drawdown"] / hold if hold > 0 else 0.0
    return Scores(metrics, baselines)


def risk_scores(
    predictions: pd.DataFrame, candles: pd.DataFrame, config: TrainingConfig, timeframe: str
) -> Scores:
    """A volatility forecast against the classical ones (:func:`ml.volatility.risk_baselines`:
    trailing, EWMA, HAR-RV) on the same rows: those where the target and every forecast
    are known. QLIKE and MSE of log volatility, and each QLIKE over HAR-RV's
    (``qlike_vs_har_rv``: below 1 beats it). A forecast of risk is not traded on its sign:
    no trading measures here (the sizing that uses it is judged where it trades)."""
    rows = predictions.index.to_numpy()
    target = make_target(candles, config.target).to_numpy()[rows]
    per_year = periods_per_year(timeframe)
    classical = risk_baselines(
        candles["close"],
        config.target.horizon,
        per_year,
        86_400 / timeframe_to_seconds(timeframe),
        downside=config.target.kind == "downside_volatility",
    )
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


@dataclass(frozen=True)
class TrainingJob:
    """What every fit of one training run shares: the data, its features and the config."""

    name: str
    candles: pd.DataFrame
    features: pd.DataFrame
    feature_spec: FeatureSpec
    config: TrainingConfig
    pair: str
    timeframe: str
    seed: int
    threads: int | None = None  # CPU threads per fit (None: the forecaster's default)

    def fit(self, rows: slice, previous: ModelBundle | None = None) -> ModelBundle:
        """A bundle fitted on ``rows`` (its training window is recorded in the bundle);
        ``previous``: the fold before, whose regime model may warm-start this one."""
        return fit_bundle(
            name=self.name,
            candles=self.candles,
            features=self.features,
            rows=rows,
            feature_spec=self.feature_spec,
            config=self.config,
            train_window=data_window(self.candles.iloc[rows], self.pair, self.timeframe),
            data_sha256=data_window(self.candles, self.pair, self.timeframe).sha256,
            seed=self.seed,
            pair=self.pair,
            timeframe=self.timeframe,
            threads=self.threads,
            previous=previous.regime_model if previous is not None else None,
        )


def walk_forward(job: TrainingJob) -> Iterator[FoldResult]:
    """Yield one :class:`FoldResult` per fold, in time order."""
    config = job.config
    per_day = 86_400 / timeframe_to_seconds(job.timeframe)
    dates = job.candles["date"].to_numpy(dtype="datetime64[ns]")
    horizon = config.target.horizon
    previous: ModelBundle | None = None
    for fold in make_folds(len(job.candles), config.walk_forward, horizon, per_day, dates):
        train_rows = slice(fold.train_start, fold.train_end)
        test_rows = slice(fold.test_start, fold.test_end)
        bundle = previous = job.fit(train_rows, previous)
        # One batched, causal prediction over everything up to the end of the test block:
        # the regime filter and the sequences need the history before the block.
        predictions = bundle.predict_features(job.features.iloc[: fold.test_end]).iloc[test_rows]
        scores = score(predictions, job.candles, config, job.timeframe)
        yield FoldResult(
            fold=fold,
            bundle=bundle,
            train_window=bundle.metadata.train_window,
            test_window=data_window(job.candles.iloc[test_rows], job.pair, job.timeframe),
            predictions=predictions,
            metrics=not_annualised(scores.metrics),
            baselines={name: not_annualised(values) for name, values in scores.baselines.items()},
        )


def fit_final(job: TrainingJob, previous: ModelBundle | None = None) -> ModelBundle:
    """The bundle to register: fitted on every candle whose target is known; ``previous``
    (the last walk-forward fold) may warm-start its regime model."""
    return job.fit(slice(0, len(job.candles) - job.config.target.horizon), previous)
