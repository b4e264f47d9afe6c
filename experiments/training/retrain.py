"""`tradingbot retrain SPEC`: refit on the latest candles, promote only what is not worse.

The rule, printed and recorded on the new run (tags ``retrain.*``):

    The new version (walk-forward on the latest candles, registered @challenger)
    replaces the @champion only if its out-of-sample return over max drawdown is not
    worse than the champion's on the same candles: those of the new run's fold test windows that
    come after the champion's training window, where neither model has seen them.
    Both are scored the same way (long when the model says so, after fees). With
    no champion yet the new version becomes champion; with fewer than
    MIN_COMPARED_CANDLES such candles the champion stays. Either way the new
    version must pass the promotion gate of ``tradingbot promote``: its own
    walk-forward not worse than buy and hold (ml.evaluation.promotion_gate).

Return over drawdown is the window's own Calmar, not annualised: a retrain compares the
weeks since the last one, too short for annual figures (ml.metrics.MIN_ANNUALISED_DAYS).

Meant to run on a timer (cron, a systemd timer, the ``retrain`` service of
docker-compose.rocm.yml); a running bot picks the promotion up by itself (the
adapter follows the alias, see ``ml.serving``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from common.context import RunContext
from common.layout import UserDir
from experiments.spec import DataConfig, ExperimentSpec
from experiments.spec_data import spec_candles
from experiments.training import Progress, TrainResult, train
from features.data import reference_candles
from features.timerange import TimeRange
from ml import tracking
from ml.bundle import ModelBundle
from ml.evaluation import promotion_gate
from ml.fold_training import candle_baselines, score
from ml.model_source import load_bundle
from ml.registry import CHAMPION, promote

MIN_COMPARED_CANDLES = 200
RULE = (
    "promote the new version if its out-of-sample return over max drawdown is not worse "
    "than the champion's "
    "on the same candles after the champion's training window (at least "
    f"{MIN_COMPARED_CANDLES}); no champion yet: promote; and only if its walk-forward "
    "is not worse than buy and hold's (the promotion gate)"
)


@dataclass(frozen=True)
class RetrainResult:
    model_name: str
    trained: TrainResult
    champion_version: str | None
    compared_candles: int
    challenger_return_over_drawdown: float | None
    champion_return_over_drawdown: float | None
    promoted: bool
    reason: str


def latest(spec: ExperimentSpec) -> ExperimentSpec:
    """``spec`` with its timerange open at the end: every candle imported so far."""
    start = TimeRange.parse(spec.data.timerange).start
    data = spec.data.model_dump(exclude_unset=True) | {
        "timerange": f"{start:%Y%m%d}-" if start else None
    }
    return spec.model_copy(update={"data": DataConfig.model_validate(data)})


@dataclass(frozen=True)
class _Verdict:
    promoted: bool
    reason: str
    compared: int = 0
    challenger_return_over_drawdown: float | None = None
    champion_return_over_drawdown: float | None = None


def _judge(
    fresh: ExperimentSpec,
    trained: TrainResult,
    champion: ModelBundle | None,
    champion_version: str | None,
    layout: UserDir,
) -> _Verdict:
    """The rule of the module doc: the challenger against the champion on the candles
    neither has seen (after the champion's training window)."""
    if champion is None:
        return _Verdict(True, "no champion yet")
    data = fresh.data
    candles = spec_candles(data, layout)
    oos = trained.out_of_sample
    trained_until = champion.metadata.train_window.last
    unseen = oos[pd.to_datetime(oos["date"], utc=True) > trained_until]
    compared = len(unseen)
    if compared < MIN_COMPARED_CANDLES:
        reason = (
            f"only {compared} candle(s) after the champion's training window "
            f"(v{champion_version}, to {trained_until:%Y-%m-%d %H:%M}): "
            f"too few to compare, at least {MIN_COMPARED_CANDLES}"
        )
        return _Verdict(False, reason, compared)
    upto = candles.iloc[: int(unseen.index.max()) + 1]
    references = reference_candles(champion.feature_spec, layout, data.exchange, data.timeframe)
    theirs = champion.predict(upto, references).loc[unseen.index]
    config = fresh.training
    baselines = candle_baselines(candles, config, data.timeframe)  # the same for both

    def return_over_drawdown(predictions: pd.DataFrame) -> float:
        scores = score(predictions, candles, config, data.timeframe, baselines)
        return scores.metrics["return_over_drawdown"]

    new_score, old_score = return_over_drawdown(unseen), return_over_drawdown(theirs)
    promoted = bool(np.nan_to_num(new_score, nan=-np.inf) >= np.nan_to_num(old_score, nan=-np.inf))
    verdict = "not worse than" if promoted else "worse than"
    reason = (
        f"return over max drawdown {new_score:.3f} {verdict} champion v{champion_version}'s "
        f"{old_score:.3f} on {compared} candles neither had seen"
    )
    return _Verdict(promoted, reason, compared, new_score, old_score)


def retrain(
    spec: ExperimentSpec, *, context: RunContext, progress: Progress | None = None
) -> RetrainResult:
    """Retrain a single-pair spec and apply the rule of the module doc."""
    layout, tracking_uri = context.layout, context.tracking_uri
    client = tracking.configure(tracking_uri, layout)
    champion_version: str | None = None
    with contextlib.suppress(MlflowException):
        champion_version = str(client.get_model_version_by_alias(spec.name, CHAMPION).version)
    champion = load_bundle(f"models:/{spec.name}/{champion_version}") if champion_version else None
    fresh = latest(spec)
    # with [lifetime] continual_learning the new final model continues the champion's
    trained = train(fresh, context=context, progress=progress, continued=champion)
    verdict = _judge(fresh, trained, champion, champion_version, layout)
    gate = promotion_gate(client.get_run(trained.run_id).data.metrics)
    if verdict.promoted and not gate.passed:  # the same gate as tradingbot promote
        verdict = dataclasses.replace(
            verdict, promoted=False, reason=f"{verdict.reason}; but the gate refuses: {gate.reason}"
        )
    run = trained.run_id
    client.set_tag(run, "retrain.rule", RULE)
    client.set_tag(run, "retrain.champion_version", champion_version or "none")
    client.set_tag(run, "retrain.compared_candles", str(verdict.compared))
    decision = ("promoted: " if verdict.promoted else "kept champion: ") + verdict.reason
    client.set_tag(run, "retrain.decision", decision)
    for key, value in (
        ("challenger", verdict.challenger_return_over_drawdown),
        ("champion", verdict.champion_return_over_drawdown),
    ):
        if value is not None and np.isfinite(value):
            client.log_metric(run, f"retrain.{key}_return_over_drawdown", float(value))
    if verdict.promoted:
        reason = f"retrain: {verdict.reason}"
        promote(client, spec.name, trained.version, reason, user="tradingbot retrain")
    return RetrainResult(
        model_name=spec.name,
        trained=trained,
        champion_version=champion_version,
        compared_candles=verdict.compared,
        challenger_return_over_drawdown=verdict.challenger_return_over_drawdown,
        champion_return_over_drawdown=verdict.champion_return_over_drawdown,
        promoted=verdict.promoted,
        reason=verdict.reason,
    )
