"""RunLog: a run's records sent in as few calls as MLflow's limits allow, none lost."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from common.layout import UserDir
from ml.run_log import MAX_METRICS, MAX_PARAMS, RunLog
from ml.tracking import configure, default_tracking_uri


def test_more_records_than_one_batch_takes_all_arrive_with_their_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = configure(default_tracking_uri(tmp_path), UserDir(tmp_path))  # our real store
    experiment = client.create_experiment("run_log")
    run_id = client.create_run(experiment).info.run_id
    calls: list[tuple[int, int, int]] = []
    original = MlflowClient.log_batch

    def counted(self: MlflowClient, run: str, metrics=(), params=(), tags=(), **kw):  # type: ignore[no-untyped-def]
        calls.append((len(metrics), len(params), len(tags)))
        return original(self, run, metrics=metrics, params=params, tags=tags, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", counted)
    history = [{"epoch": float(e), "loss": 1.0 / (e + 1), "val": 2.0} for e in range(700)]
    record = RunLog(run_id).history(history).metrics({"calmar": 1.5, "sharpe": 0.7})
    record.params({f"p{i}": i for i in range(150)}).tags({"device": "cpu"}).send()

    assert len(calls) == 2  # 1,402 metrics and 150 params: two calls, not one per group
    assert all(m <= MAX_METRICS and p <= MAX_PARAMS for m, p, _ in calls)
    run = client.get_run(run_id)
    assert len(run.data.params) == 150 and run.data.tags["device"] == "cpu"
    assert run.data.metrics["calmar"] == 1.5
    loss = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in loss) == list(range(700))
    record.send()  # nothing left: no call
    assert len(calls) == 2


def test_sending_needs_a_run() -> None:
    mlflow.end_run()
    with pytest.raises(RuntimeError, match="active MLflow run"):
        RunLog().metrics({"x": 1.0}).send()
