"""Where the MLflow UI opens an experiment: its model-training view, runs as rows and
the figures a trader compares as columns.

MLflow 3.x decides the view from the ``workflowType`` URL parameter (else the choice
saved in the browser, GenAI by default), not from the experiment's
``mlflow.experimentKind`` tag alone. The runs table's columns and order come from a
*shared view state*: an experiment tag ``mlflow.sharedViewState.<key>`` holding the
table's state as JSON, applied by the URL parameter ``viewStateShareKey=<key>`` (the
"share" button of the experiment page writes the same). :func:`comparison_url` is
the address ``tradingbot ui`` prints; :func:`view_tags` the tag every experiment gets.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "tradingbot-compare"
WORKFLOW = "machine_learning"  # MLflow's model-training view (the other is "genai")

# (metric, what it says) per kind of experiment, in column order
TRAINING_COLUMNS = (
    ("overall.calmar", "walk-forward Calmar"),
    ("overall.drawdown_vs_buy_hold", "max drawdown as a multiple of buy and hold's"),
    ("overall.total_return", "walk-forward return"),
    ("overall.changes_per_year", "position changes a year"),
    ("baseline.always_long.calmar", "buy and hold's Calmar on the same candles"),
    ("baseline.sma50_daily.calmar", "the SMA50 rule's Calmar on the same candles"),
)
BACKTEST_COLUMNS = (
    ("mtm.calmar", "Calmar, marked to market"),
    ("mtm.drawdown_vs_buy_hold", "max drawdown as a multiple of buy and hold's"),
    ("mtm.total_return", "return, marked to market"),
    ("baseline.always_long.calmar", "buy and hold's Calmar on the same candles"),
    ("baseline.sma50_daily.calmar", "the SMA50 rule's Calmar on the same candles"),
    ("closed.trades", "closed trades"),
)
BACKTEST_EXPERIMENT = "backtests"


def metric_column(name: str) -> str:
    """The runs table's key of a metric column (MLflow: metrics.`name`)."""
    return f"metrics.`{name}`"


def columns_of(experiment: str) -> tuple[tuple[str, str], ...]:
    return BACKTEST_COLUMNS if experiment == BACKTEST_EXPERIMENT else TRAINING_COLUMNS


def view_state(experiment: str) -> str:
    """The shared view state of ``experiment``: its key figures as columns, the best
    Calmar first, every run shown."""
    columns = [metric_column(name) for name, _ in columns_of(experiment)]
    state = {
        "selectedColumns": columns,
        "columnOrder": columns,
        "orderByKey": columns[0],
        "orderByAsc": False,
        "runsHiddenMode": "SHOW_ALL",
    }
    return json.dumps(state, separators=(",", ":"))


def view_tags(experiment: str) -> dict[str, str]:
    """The experiment tag that holds :func:`view_state` under :data:`VIEW_KEY`."""
    return {f"{SHARED_VIEW_PREFIX}{VIEW_KEY}": view_state(experiment)}


def comparison_url(base: str, experiment_id: str) -> str:
    """The address of ``experiment_id``'s runs compared in the model-training view."""
    query = urlencode({"viewStateShareKey": VIEW_KEY, "workflowType": WORKFLOW})
    # the runs tab itself: the experiment's bare page redirects to it without the query
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
