"""What a backtest must agree with before it runs (experiments/backtesting/checks.py), on a
real MLflow store whose training runs carry the tags training writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from common.layout import UserDir
from experiments.backtesting.checks import (
    BacktestMismatch,
    fitting_strategy,
    require_out_of_sample,
    walk_forward_timerange,
)
from ml.serving.served import ServedModels
from ml.tracking import configure, default_tracking_uri


def _served(tmp_path: Path, kind: str) -> tuple[MlflowClient, ServedModels]:
    client = configure(default_tracking_uri(tmp_path), UserDir(tmp_path))
    experiment = client.create_experiment(f"exp_{kind}")
    tags = {"model_kind": kind, "data.last": "2021-01-01T00:00:00+00:00"}
    run = client.create_run(experiment, tags=tags)
    return client, ServedModels(f"models:/{kind}_m/1", "1", run.info.run_id)


def test_the_strategy_follows_the_model_kind_and_a_misfit_is_refused(tmp_path: Path) -> None:
    client, allocation = _served(tmp_path, "regime_allocation")
    assert fitting_strategy(client, allocation, None) == "RegimeAllocationStrategy"
    with pytest.raises(BacktestMismatch, match="target exposure"):
        fitting_strategy(client, allocation, "RegimeStrategy")
    client, forecaster = _served(tmp_path, "lightgbm")
    assert fitting_strategy(client, forecaster, None) == "RegimeStrategy"
    assert fitting_strategy(client, forecaster, "RegimeRulesStrategy") == "RegimeRulesStrategy"
    with pytest.raises(BacktestMismatch, match="probability"):
        fitting_strategy(client, forecaster, "RegimeAllocationStrategy")
    assert (
        fitting_strategy(client, ServedModels(), "TrendPullbackStrategy") == "TrendPullbackStrategy"
    )


def test_a_window_inside_the_training_window_is_refused(tmp_path: Path) -> None:
    client, served = _served(tmp_path, "lightgbm")
    with pytest.raises(BacktestMismatch, match="--walk-forward"):
        require_out_of_sample(client, served, "20200101-20201231")
    require_out_of_sample(client, served, "20201201-20210301")
    require_out_of_sample(client, served, "20200101-")


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ("", "20200601-20210601"),
        ("20201001-20201101", "20201001-20201101"),
        ("20201001-", "20201001-20210601"),
        ("20200101-20210601", None),
        ("20201001-20220101", None),
    ],
)
def test_a_walk_forward_timerange_is_honoured_or_refused(asked: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(BacktestMismatch, match="20200601-20210601"):
            walk_forward_timerange(asked, "20200601-20210601")
    else:
        assert walk_forward_timerange(asked, "20200601-20210601") == expected
