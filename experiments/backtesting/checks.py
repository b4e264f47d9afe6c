"""What a backtest must agree with before Freqtrade runs, so it never runs silently wrong.

* the strategy fits the model: a regime allocation (a target exposure, 0..1) is traded
  by ``RegimeAllocationStrategy`` and a forecaster (a probability) by anything else;
  without ``--strategy`` the strategy follows the model's kind;
* the window holds candles the model never saw: a window inside the final model's
  training window would score the training data (and its annualised figures would
  be absurd);
* a walk-forward timerange lies inside the span of the stitched predictions: it is
  honoured there or refused, never echoed and ignored.
"""

from __future__ import annotations

from datetime import datetime

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from common.errors import SpecError
from features.timerange import TimeRange
from ml.models import FORECASTERS, forecaster_class
from ml.serving.served import ServedModels

ALLOCATION_STRATEGY = "RegimeAllocationStrategy"
DEFAULT_STRATEGY = "RegimeStrategy"


class BacktestMismatch(SpecError):
    """A backtest whose parts do not fit each other."""


def _training_runs(served: ServedModels) -> list[str]:
    if served.by_pair:
        return [run for _, _, run in served.by_pair.values() if run]
    return [served.training_run] if served.training_run else []


def _tags(client: mlflow.MlflowClient, run_id: str) -> dict[str, str]:
    try:
        return dict(client.get_run(run_id).data.tags)
    except MlflowException:
        return {}


def model_kind(client: mlflow.MlflowClient, served: ServedModels) -> str | None:
    """The model kind the training run of ``served`` recorded (None: no model, or an
    old run without the tag)."""
    runs = _training_runs(served)
    return _tags(client, runs[0]).get("model_kind") if runs else None


def fitting_strategy(
    client: mlflow.MlflowClient, served: ServedModels, strategy: str | None
) -> str:
    """``strategy``, or the one the model's kind is traded by; refused when they do not fit."""
    kind = model_kind(client, served)
    # a model whose output is a target exposure is traded by the allocation strategy
    allocation = kind in FORECASTERS and forecaster_class(kind).outputs_exposure
    chosen = strategy or (ALLOCATION_STRATEGY if allocation else DEFAULT_STRATEGY)
    if kind is not None and allocation != (chosen == ALLOCATION_STRATEGY):
        wanted = ALLOCATION_STRATEGY if allocation else f"a strategy other than {chosen}"
        raise BacktestMismatch(
            f"strategy {chosen} does not fit the model ({served.uri}, a {kind} model): "
            f"{'it reports a target exposure' if allocation else 'it reports a probability'}",
            hint=f"trade it with {wanted} (leave --strategy out to follow the model)",
        )
    return chosen


def require_out_of_sample(
    client: mlflow.MlflowClient, served: ServedModels, timerange: str
) -> None:
    """Refuse a window that ends inside the final model's training window (every
    candle in it was trained on)."""
    end = TimeRange.parse(timerange).end
    if end is None:
        return
    for run in _training_runs(served):
        trained = _tags(client, run).get("data.last")
        if trained and pd.Timestamp(end) <= pd.Timestamp(trained):
            raise BacktestMismatch(
                f"the backtest window {timerange} lies inside the training window of "
                f"{served.uri} (trained on candles up to {trained}): no candle is out of sample",
                hint="backtest after the training window, or use --walk-forward (each fold "
                "on its own out-of-sample candles)",
            )


def walk_forward_timerange(asked: str, span: str) -> str:
    """The timerange of a walk-forward backtest: ``span`` (that of the stitched
    predictions) when none is asked; the asked one when it lies inside it; else refused."""
    if not asked:
        return span
    wanted, available = TimeRange.parse(asked), TimeRange.parse(span)
    start = wanted.start or available.start
    end = wanted.end or available.end
    if not _inside(start, end, available):
        raise BacktestMismatch(
            f"--timerange {asked} reaches outside the walk-forward predictions ({span})",
            hint=f"give a timerange inside {span}, or leave it out for all of it",
        )
    return f"{start:%Y%m%d}-{end:%Y%m%d}"


def _inside(start: datetime | None, end: datetime | None, span: TimeRange) -> bool:
    if start is None or end is None or span.start is None or span.end is None:
        return False
    return span.start <= start < end <= span.end
