"""`tradingbot tune`: the whole study, from the request to the result."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import optuna
from mlflow.entities import Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from common.errors import SpecError
from common.executors import Executor, RayCluster
from experiments.tuning.claim import finalise_claim
from experiments.tuning.finalise import _finalise
from experiments.tuning.liveness import (
    describe_running,
    running_elsewhere,
)
from experiments.tuning.objective import (
    TuningData,
    check_tuning,
    folds_of,
    strategy_defaults,
)
from experiments.tuning.request import Progress, TuneRequest, TuneResult
from experiments.tuning.storage import (
    activity,
    best_value,
    counts,
    load_study,
    open_storage,
    reclaim,
    storage_label,
)
from experiments.tuning.worker import Worker, WorkerArgs, _run_processes, run_on_cluster
from features.candles import data_window
from ml import tracking
from ml.bundle import package_versions


def _parent_run(
    client: MlflowClient,
    experiment: str,
    study: optuna.Study,
    request: TuneRequest,
    data: TuningData,
) -> str:
    """The study's MLflow parent run: reopened when the study continues, else created."""
    existing = study.user_attrs.get("mlflow_parent_run_id")
    if existing:
        try:
            client.get_run(existing)
        except Exception:
            existing = None
    if existing:
        client.update_run(existing, status=RunStatus.to_string(RunStatus.RUNNING))
        for key, value in tracking.process_tags().items():
            client.set_tag(existing, key, value)
        if "tradingbot.failure" in client.get_run(existing).data.tags:  # an earlier call's death
            client.delete_tag(existing, "tradingbot.failure")
        return str(existing)
    window = data_window(data.candles, request.spec.data.pair, request.spec.data.timeframe)
    tags = {
        MLFLOW_RUN_NAME: f"{request.spec.name} tune {request.study_name}",
        "tradingbot.kind": "tune",
        "optuna.study": request.study_name,
        "optuna.storage": storage_label(request.storage, request.context.layout),
        **tracking.lineage(
            window,
            spec_hash=request.spec.hash,
            seed=request.spec.seed,
            model_kind=request.spec.model.kind,
        ),
        **data.windows(),
    }
    run = client.create_run(experiment, tags=tags)
    run_id = str(run.info.run_id)
    tune_config = request.tune
    params = {
        "objective": ",".join(tune_config.objectives),
        "sampler": tune_config.sampler_kind,
        "pruner": tune_config.pruner_kind,
        "test_fraction": str(tune_config.test_fraction),
        "strategy": request.spec.backtest.strategy,
        **{f"space.{k}": v.model_dump_json() for k, v in tune_config.space.items()},
    }
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    client.log_dict(run_id, request.spec.model_dump(mode="json"), "spec/spec.json")
    if request.spec_text is not None:
        client.log_text(run_id, request.spec_text, "spec/spec.toml")
    client.log_dict(run_id, package_versions(), "environment/versions.json")
    study.set_user_attr("mlflow_parent_run_id", run_id)
    return run_id


def _run_workers(
    args: WorkerArgs,
    data: TuningData,
    client: MlflowClient,
    report: Callable[[], None],
    cluster: Executor | None,
) -> None:
    """The trials: on ``cluster`` (Ray: ``jobs`` Optuna workers as its tasks), else in
    this process (one job) or in ``jobs`` worker processes; the parent run is marked
    killed or failed if they end by an interrupt or an error."""
    try:
        if cluster is not None:
            run_on_cluster(args, cluster, report)
        elif args.request.jobs == 1:
            worker = Worker(args, data)
            worker.run(worker.open(), on_progress=report)
        else:
            _run_processes(args, args.request.jobs, report)
    except KeyboardInterrupt:
        client.set_terminated(args.parent_run_id, status=RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        client.set_terminated(args.parent_run_id, status=RunStatus.to_string(RunStatus.FAILED))
        raise


def _result(request: TuneRequest, study: optuna.Study, parent_run_id: str) -> TuneResult:
    """What the study holds now: trials by state, model fits, finished or not."""
    final = counts(study)
    fits = sum(int(t.user_attrs.get("fits", 0)) for t in study.get_trials(deepcopy=False))
    return TuneResult(
        study=request.study_name,
        storage=storage_label(request.storage, request.context.layout),
        trials=request.trials,
        complete=final.complete,
        pruned=final.pruned,
        failed=final.failed,
        fits=fits,
        finished=final.finished >= request.trials,
        parent_run_id=parent_run_id,
    )


def tune(
    request: TuneRequest, progress: Progress | None = None, executor: Executor | None = None
) -> TuneResult:
    """Run the study of ``request`` to its number of trials (see docs/TUNING.md). With a
    Ray ``executor`` its Optuna workers are the cluster's tasks: each loads the data once
    and runs trials against the shared storage, as a worker process does (a task per
    trial would load the candles and features again for every trial)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress bar says it all
    cluster = executor if isinstance(executor, RayCluster) else None
    if cluster is not None and cluster.address is not None and request.storage is None:
        raise SpecError(
            "a Ray cluster's workers share a study only through a database storage",
            hint="give --storage postgresql://... (reached by every worker), or tune on "
            "this machine (--executor local)",
        )
    tune_config = request.tune
    if request.trials < 1:
        raise SpecError("--trials must be at least 1")
    if request.jobs < 1:
        raise SpecError("--jobs must be at least 1")
    if request.spec.is_whitelist and request.spec.data.pooling == "pooled":
        raise SpecError(
            f"spec {request.spec.name}: tuning a pooled model is not available yet",
            hint="tune a single-pair spec",
        )
    if request.spec.is_whitelist:
        raise SpecError(
            f"spec {request.spec.name} has a whitelist: tune one pair at a time",
            hint="--pair P tunes that pair's model",
        )
    check_tuning(request.spec, tune_config, strategy_defaults(request.spec, request.context.layout))
    data = TuningData.load(request.spec, tune_config, request.context.layout)
    folds = folds_of(data, request.spec, tune_config)
    storage = open_storage(request.storage, request.context.layout)
    study = load_study(request, storage, sampler_seed=request.spec.seed, folds=folds)
    client = tracking.configure(request.context.tracking_uri, request.context.layout)
    reclaim(study, storage, client)
    experiment = tracking.experiment_id(client, request.spec.name, request.context.layout)
    tracking.fail_stale_runs(client, experiment)
    parent_run_id = _parent_run(client, experiment, study, request, data)

    def report() -> None:
        if progress is not None:
            progress(counts(study), best_value(study), activity(study, folds))

    report()
    args = WorkerArgs(
        request=request,
        worker=0,
        parent_run_id=parent_run_id,
        experiment_id=experiment,
        deadline=time.time() + request.timeout if request.timeout else None,
        parent_pid=os.getpid(),
        threads=cluster.threads if cluster else max(1, (os.cpu_count() or 1) // request.jobs),
    )
    _run_workers(args, data, client, report, cluster)
    study = optuna.load_study(study_name=request.study_name, storage=storage)
    report()
    result = _result(request, study, parent_run_id)
    if not result.finished:  # time is up, or others still run: continue with the same --study
        now = time.time()
        result = dataclasses.replace(
            result, running_elsewhere=[describe_running(t, now) for t in running_elsewhere(study)]
        )
        client.set_tag(parent_run_id, "tune.state", "incomplete")
        client.set_terminated(parent_run_id, status=RunStatus.to_string(RunStatus.FINISHED))
        return result
    with finalise_claim(storage, request.study_name) as holder:
        if holder is not None:
            return dataclasses.replace(result, finalising_elsewhere=holder)
        return _finalise(request, data, study, client, parent_run_id, result)
