"""One worker: runs trials of a study until it has the requested number (or time is up)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from filelock import FileLock
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState

from common.executors import Executor
from experiments.tuning.liveness import (
    INTERRUPTED,
    Heartbeat,
    queue_again,
)
from experiments.tuning.objective import (
    TuningData,
    folds_of,
    objective_values,
    run_trial,
    strategy_defaults,
    suggest_trial,
)
from experiments.tuning.request import MAX_CONSECUTIVE_FAILURES, TuneError, TuneRequest
from experiments.tuning.storage import counts, load_study, make_sampler, open_storage, reclaim
from ml import tracking

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerArgs:
    request: TuneRequest
    worker: int
    parent_run_id: str
    experiment_id: str
    deadline: float | None  # time.time() after which no new trial starts
    # the command's process: a worker whose parent is gone starts no trial; None under a
    # scheduler that ends the job with its driver (Ray)
    parent_pid: int | None
    threads: int


class Worker:
    """Runs trials of one study until it has the requested number (or time is up)."""

    def __init__(self, args: WorkerArgs, data: TuningData | None = None) -> None:
        self.args = args
        request = args.request
        self.tune = request.tune
        self.data = data or TuningData.load(request.spec, self.tune, request.context.layout)
        self.defaults = strategy_defaults(request.spec, request.context.layout)
        self.folds = folds_of(self.data, request.spec, self.tune)
        tracking.configure(request.context.tracking_uri, request.context.layout)
        self.client = MlflowClient(
            request.context.tracking_uri, registry_uri=request.context.tracking_uri
        )
        lock_dir = request.context.layout.optuna
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(lock_dir / f"{request.study_name}.lock"))
        # Several workers share the cores: each gets its share (one worker keeps the defaults).
        self.threads = args.threads if request.jobs > 1 else None

    def open(self) -> optuna.Study:
        request = self.args.request
        storage = open_storage(request.storage, request.context.layout)
        self.storage = storage
        study = load_study(request, storage, sampler_seed=request.spec.seed, folds=self.folds)
        # Distinct per worker and per resume, so parallel or restarted samplers do not
        # propose the same random start-up points again; still a function of the spec's seed.
        seed = request.spec.seed * 1_000_003 + self.args.worker * 7919 + len(study.trials)
        study.sampler = make_sampler(self.tune, seed)
        return study

    def run(self, study: optuna.Study, on_progress: Callable[[], None] | None = None) -> None:
        """Run trials until the study has enough; ``on_progress`` after each fold and trial."""
        failures = 0
        while self._may_start():
            outcome = self.run_one(study, on_progress=on_progress)
            if outcome is None:
                return
            failures = failures + 1 if outcome == TrialState.FAIL else 0
            if failures >= MAX_CONSECUTIVE_FAILURES:
                last = study.get_trials(deepcopy=False)[-1].user_attrs.get("error", "?")
                raise TuneError(
                    f"{failures} trials in a row failed; the last with: {last}",
                    hint="check the search space; each failure is in the trial's MLflow run",
                )
            if on_progress is not None:
                on_progress()

    def _may_start(self) -> bool:
        if self.args.deadline is not None and time.time() >= self.args.deadline:
            return False
        parent = self.args.parent_pid
        return parent is None or os.getppid() == parent or self.args.worker == 0

    def run_one(
        self, study: optuna.Study, on_progress: Callable[[], None] | None = None
    ) -> TrialState | None:
        """Ask for one trial and run it; ``None`` when the study already has enough.
        ``on_progress`` is called after each fold."""
        with self.lock:
            reclaim(study, self.storage, self.client)
            now = counts(study)
            if now.finished + now.running >= self.args.request.trials:
                return None
            trial = study.ask()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        # Heartbeats until the trial is told: workers elsewhere can tell it from a dead one.
        with Heartbeat(self.storage, trial._trial_id):
            run_id = self._start_run(trial)
            trial.set_user_attr("mlflow_run_id", run_id)
            started = time.monotonic()
            fits = [0]  # model fits so far, counted by the fold callback
            try:
                state, values, error = self._evaluate(trial, run_id, fits, on_progress)
            except BaseException:  # Ctrl-C / SIGTERM: not the trial's fault, run it again later
                trial.set_user_attr(INTERRUPTED, True)
                study.tell(trial, state=TrialState.FAIL)
                queue_again(study, trial.number, trial.params)
                self._end_run(run_id, "interrupted", fits[0], started, RunStatus.KILLED)
                raise
            trial.set_user_attr("fits", fits[0])
            if state == TrialState.COMPLETE:
                study.tell(trial, values)
            else:
                study.tell(trial, state=state)
            status = RunStatus.FAILED if state == TrialState.FAIL else RunStatus.FINISHED
            self._end_run(run_id, state.name, fits[0], started, status, values, error)
            return state

    def _evaluate(
        self,
        trial: optuna.Trial,
        run_id: str,
        fits: list[int],
        on_progress: Callable[[], None] | None,
    ) -> tuple[TrialState, list[float] | None, str | None]:
        """Run the trial's folds: (state, objective values if complete, error if failed).
        A failing parameter combination is a failed trial, not a failed study."""
        try:
            params, spec, strategy = suggest_trial(
                trial, self.args.request.spec, self.tune, self.defaults
            )
            self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
            on_fold = self._fold_callback(trial, run_id, fits, on_progress)
            outcome = run_trial(self.data, spec, strategy, on_fold, self.threads)
            trial.set_user_attr("metrics", outcome.metrics)
            return TrialState.COMPLETE, objective_values(outcome.metrics, self.tune), None
        except optuna.TrialPruned:
            return TrialState.PRUNED, None, None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning("trial %d failed: %s", trial.number, error)
            trial.set_user_attr("error", error)
            return TrialState.FAIL, None, error

    def _fold_callback(
        self,
        trial: optuna.Trial,
        run_id: str,
        fits: list[int],
        on_progress: Callable[[], None] | None,
    ) -> Callable[[int, dict[str, float]], None]:
        """After each fold: count the fit, log its metrics at its step, report it to the
        pruner (single objective), which may end the trial."""

        def on_fold(step: int, metrics: dict[str, float]) -> None:
            fits[0] += 1
            stamp = int(time.time() * 1000)
            # NaN: an annualised measure of the folds so far, shorter than ml.metrics allows
            finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
            self.client.log_batch(
                run_id, metrics=[Metric(k, v, stamp, step) for k, v in finite.items()]
            )
            trial.set_user_attr("folds_done", step + 1)  # for the progress display
            if on_progress is not None:
                on_progress()
            objective = self.tune.objectives[0]
            if not self.tune.multi_objective and objective in finite:
                trial.report(finite[objective], step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {step}")

        return on_fold

    def _start_run(self, trial: optuna.Trial) -> str:
        request = self.args.request
        run = self.client.create_run(
            self.args.experiment_id,
            run_name=f"trial {trial.number}",
            tags={
                MLFLOW_PARENT_RUN_ID: self.args.parent_run_id,
                "optuna.study": request.study_name,
                "optuna.trial": str(trial.number),
                "tradingbot.kind": "tune_trial",
                "spec_hash": request.spec.hash,
                "seed": str(request.spec.seed),
                **tracking.process_tags(),
            },
        )
        return str(run.info.run_id)

    def _end_run(
        self,
        run_id: str,
        state: str,
        fits: int,
        started: float,
        status: int,
        values: list[float] | None = None,
        error: str | None = None,
    ) -> None:
        stamp = int(time.time() * 1000)
        metrics = [
            Metric("duration_s", time.monotonic() - started, stamp, 0),
            Metric("fits", float(fits), stamp, 0),
        ]
        if values is not None:
            metrics += [
                Metric(f"objective.{name}", value, stamp, 0)
                for name, value in zip(self.tune.objectives, values, strict=True)
            ]
        tags = [RunTag("optuna.state", state)]
        if error is not None:
            tags.append(RunTag("tradingbot.failure", error))
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        self.client.set_terminated(run_id, status=RunStatus.to_string(status))


# How long a worker waits for the others to be ready before it starts trials anyway.
START_TOGETHER_S = 600.0


def _worker_main(args: WorkerArgs, ready: Any = None) -> None:
    """Entry point of a worker process (spawned: no state is shared but the storages).
    ``ready``: a barrier all workers pass once their data is loaded, so that trials start
    together instead of going to whichever worker happened to import fastest."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # BLAS/OpenMP of numpy and scikit-learn (the HMM)
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    worker = Worker(args)
    study = worker.open()
    if ready is not None:
        with contextlib.suppress(threading.BrokenBarrierError):  # a slow or dead sibling
            ready.wait(timeout=START_TOGETHER_S)
    worker.run(study)


@dataclass(frozen=True)
class OptunaWorker:
    """One Optuna worker as an executor's job (a Ray task): it loads the data once and
    runs trials until the study has enough, as a worker process does."""

    args: WorkerArgs

    def run(self) -> None:
        _worker_main(self.args)


def run_on_cluster(args: WorkerArgs, executor: Executor, report: Callable[[], None]) -> None:
    """``args.request.jobs`` Optuna workers as tasks of ``executor`` (a Ray cluster), the
    study's storage shared between them; ``report`` is called every second meanwhile."""
    jobs = [
        OptunaWorker(dataclasses.replace(args, worker=index + 1, parent_pid=None))
        for index in range(args.request.jobs)
    ]
    failure: list[BaseException] = []

    def run() -> None:
        try:
            executor.run_all(jobs)
        except BaseException as exc:  # raised below, in the command's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="tune-workers", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(timeout=1.0)
        report()
    if failure:
        raise failure[0]


def _run_processes(args: WorkerArgs, jobs: int, report: Callable[[], None]) -> None:
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(jobs)
    processes = []
    for index in range(jobs):
        worker_args = dataclasses.replace(args, worker=index + 1)
        process = context.Process(target=_worker_main, args=(worker_args, ready), daemon=False)
        process.start()
        processes.append(process)
    try:
        while any(p.is_alive() for p in processes):
            time.sleep(1.0)
            report()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise TuneError(
            f"{len(failed)} of {jobs} worker processes failed (exit codes {failed})",
            hint="the error is in their log output above; finished trials are kept",
        )
