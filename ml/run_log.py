"""Metrics, params and tags of one MLflow run, sent together.

Every ``mlflow.log_metrics``/``log_params``/``set_tags`` call is a database commit;
with one call per group of metrics, recording a pair's walk-forward took a quarter of
its training time. :class:`RunLog` collects what a run records and sends it in as few
``log_batch`` calls as MLflow's limits allow.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

# MLflow's limits for one log_batch call
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000


class RunLog:
    """What one run records, sent by :meth:`send` (metrics keep their steps)."""

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id  # None: the active run when sent
        self._metrics: list[Metric] = []
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._stamp = int(time.time() * 1000)
        # a model logged in the run: its metrics at step 0 are the model's too, as MLflow
        # links them itself when they were logged before the model (ml.registry)
        self.model_id: str | None = None

    def metrics(self, values: Mapping[str, float], prefix: str = "", step: int = 0) -> RunLog:
        """Add metrics; a NaN or infinite value is left out (e.g. an annualised measure
        over a window too short for it, see ml.metrics): absent, never a number."""
        self._metrics += [
            Metric(f"{prefix}{key}", float(value), self._stamp, step)
            for key, value in values.items()
            if math.isfinite(float(value))
        ]
        return self

    def history(self, records: Sequence[Mapping[str, float]], prefix: str = "") -> RunLog:
        """Per-epoch metrics, each at its epoch as step."""
        for record in records:
            step = int(record.get("epoch", 0))
            self.metrics({k: v for k, v in record.items() if k != "epoch"}, prefix, step)
        return self

    def params(self, values: Mapping[str, Any]) -> RunLog:
        self._params.update({key: str(value) for key, value in values.items()})
        return self

    def tags(self, values: Mapping[str, Any]) -> RunLog:
        self._tags.update({key: str(value) for key, value in values.items()})
        return self

    def send(self) -> None:
        """Log everything collected (then nothing is left to send); the metrics at step 0
        also to :attr:`model_id`'s model, when set."""
        run_id = self.run_id
        if run_id is None:
            active = mlflow.active_run()
            if active is None:
                raise RuntimeError("RunLog.send() needs a run id or an active MLflow run")
            run_id = active.info.run_id
        metrics, model_id = self._metrics, self.model_id
        if model_id is not None:
            metrics = [
                Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id) if m.step == 0 else m
                for m in metrics
            ]
        params = [Param(k, v) for k, v in self._params.items()]
        tags = [RunTag(k, v) for k, v in self._tags.items()]
        client = MlflowClient()
        while metrics or params or tags:
            batch_params, params = params[:MAX_PARAMS], params[MAX_PARAMS:]
            batch_tags, tags = tags[:MAX_TAGS], tags[MAX_TAGS:]
            room = min(MAX_METRICS, MAX_ENTITIES - len(batch_params) - len(batch_tags))
            batch_metrics, metrics = metrics[:room], metrics[room:]
            client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)
        self._metrics, self._params, self._tags = [], {}, {}


@contextlib.contextmanager
def held() -> Iterator[RunLog]:
    """A :class:`RunLog` of the active run, sent when the block ends: whole when it
    succeeds, after the model it logged (set ``model_id``); on an error, what it holds,
    so a failed run keeps the figures it got to, and the error is raised as it was.

    Why after the model: MLflow asks the store for the history of every metric a run
    already has when a model is logged in it (to link them to the model), about 0.4 s
    of a pair's 3 s training; sent after, the same records are one call."""
    figures = RunLog()
    try:
        yield figures
    except BaseException:
        with contextlib.suppress(Exception):  # the store may be what failed
            figures.send()
        raise
    figures.send()
