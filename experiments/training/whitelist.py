"""Training a whitelist spec: one model per pair, under one MLflow parent run, in worker
processes or on a Ray cluster when asked (``tradingbot train --jobs N --executor ray``)."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from common.context import RunContext
from common.executors import Executor, InProcess, limit_threads
from common.layout import pair_to_filename
from experiments.spec import ExperimentSpec
from experiments.training.pipeline import Progress, TrainResult, progress_steps, train
from features.data.store import require_pairs
from ml import tracking
from ml.models import forecaster_class
from ml.run_log import RunLog


@dataclass(frozen=True)
class WhitelistResult:
    """A whitelist spec's training: the parent run and each pair's own result."""

    run_id: str
    experiment_id: str
    spec_name: str
    pairs: dict[str, TrainResult]


def _parent_run(
    client: MlflowClient, experiment: str, spec: ExperimentSpec, spec_text: str | None
) -> str:
    """The whitelist's parent run, with the spec it trains; returns its id."""
    data = spec.data
    parent = client.create_run(
        experiment,
        run_name=f"{spec.name} whitelist ({len(data.whitelist)} pairs)",
        tags={
            "spec_hash": spec.hash,
            "whitelist": ",".join(data.whitelist),
            "git_commit": tracking.git_commit(),
            "seed": str(spec.seed),
            "model_kind": spec.model.kind,
            **tracking.process_tags(),
        },
    )
    parent_id: str = parent.info.run_id
    try:
        client.log_dict(parent_id, spec.model_dump(mode="json"), "spec/spec.json")
        if spec_text is not None:
            client.log_text(parent_id, spec_text, "spec/spec.toml")
    except BaseException:
        client.set_terminated(parent_id, status="FAILED")
        raise
    return parent_id


def train_whitelist(
    spec: ExperimentSpec,
    *,
    context: RunContext,
    spec_text: str | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
    keep_folds: bool = False,
) -> WhitelistResult:
    """One model per pair of ``spec``'s whitelist, each registered as
    :func:`ml.model_uris.model_name` (``<spec>__<BASE>_<QUOTE>``) with alias
    ``challenger``. One MLflow parent run in the spec's experiment holds the pairs'
    training runs (which hold their folds) and a per-pair summary (``<KEY>.calmar``...).

    Every pair's candles are checked before anything is recorded. A failure ends the
    parent run FAILED; the pairs trained before it stay registered (each on its own is
    complete) and a second call trains every pair again. Each pair is one job of
    ``executor`` (default: one after another here): worker processes or a Ray cluster
    train several at once, each with its share of the CPU threads."""
    layout, tracking_uri = context.layout, context.tracking_uri
    executor = executor or InProcess()
    data = spec.data
    require_pairs(layout, data.exchange, data.whitelist, data.timeframe)
    client = tracking.configure(tracking_uri, layout)
    experiment = tracking.experiment_id(client, spec.name, layout)
    tracking.fail_stale_runs(client, experiment)
    parent_id = _parent_run(client, experiment, spec, spec_text)
    say = progress or (lambda _text: None)
    pairs = list(data.whitelist)
    jobs = [
        PairTraining(
            spec.for_pair(pair),
            context,
            spec_text=spec_text,
            experiment_name=spec.name,
            parent_run_id=parent_id,
            keep_folds=keep_folds,
            threads=executor.threads if executor.remote else None,
            # a callback reaches back only from this process; a worker's pair reports once
            progress=None if executor.remote else progress,
        )
        for pair in pairs
    ]
    steps = progress_steps(spec)

    def done(index: int, _result: TrainResult) -> None:
        if executor.remote:
            for _ in range(steps):
                say(f"{pairs[index]} trained")

    try:
        trained = executor.run_all(jobs, on_done=done)
        results = dict(zip(pairs, trained, strict=True))
        summary = RunLog(parent_id)  # in one call: one per figure took 0.75 s for 10 pairs
        for pair in pairs:
            summary.metrics(results[pair].metrics, prefix=f"{pair_to_filename(pair)}.")
        summary.send()
    except KeyboardInterrupt:
        client.set_terminated(parent_id, status="KILLED")
        raise
    except BaseException:
        client.set_terminated(parent_id, status="FAILED")
        raise
    client.set_terminated(parent_id, status="FINISHED")
    return WhitelistResult(parent_id, experiment, spec.name, results)


@dataclass(frozen=True)
class PairTraining:
    """One pair of a whitelist as an executor's job: a picklable value (the pair's own
    spec and the run context) whose result does not depend on where it runs."""

    spec: ExperimentSpec
    context: RunContext
    spec_text: str | None
    experiment_name: str
    parent_run_id: str
    keep_folds: bool = False
    threads: int | None = None  # this job's share of the CPU threads, when it shares them
    progress: Progress | None = None

    def run(self) -> TrainResult:
        if self.threads is not None:
            uses_torch = forecaster_class(self.spec.model.kind).uses_torch
            limit_threads(self.threads, torch=uses_torch)
        # a retry after a lost worker: the lost attempt's runs end FAILED, wherever it ran
        client = tracking.configure(self.context.tracking_uri, self.context.layout)
        experiment = tracking.experiment_id(client, self.experiment_name, self.context.layout)
        pair = {"pair": self.spec.data.pair}
        tracking.fail_lost_attempts(client, experiment, self.parent_run_id, pair)
        return train(
            self.spec,
            context=self.context,
            spec_text=self.spec_text,
            progress=self.progress,
            experiment_name=self.experiment_name,
            parent_run_id=self.parent_run_id,
            threads=self.threads,
            keep_folds=self.keep_folds,
        )
