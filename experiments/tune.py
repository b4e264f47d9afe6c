"""`tradingbot tune`: an Optuna study over model and strategy parameters, resumable and parallel.

* Storage: Optuna's JournalFileBackend at ``<userdir>/optuna/journal.log`` by
  default (one file, many studies, safe for several processes); ``--storage URL``
  for an RDB (``sqlite:///...``, ``postgresql://...``) shared by several machines.
* ``--trials N`` is the size the study should reach: finished trials (complete,
  pruned or failed) are counted across runs, so a killed tune started again with
  the same ``--study`` continues to exactly N. A trial left running by a worker
  that no longer exists (a dead pid on this host; on another host, no heartbeat for
  5 minutes: :mod:`experiments.trial_liveness`) is marked failed (``interrupted``)
  and its parameters are queued again, so it is neither lost nor counted twice.
* ``--jobs K`` runs K worker processes on the study; a file lock makes
  "count, then ask for a trial" atomic on this machine.
* MLflow: one parent run per study (reopened on resume) and one child run per
  trial with its parameters, the per-fold values as steps, its state and duration.
* At the end the best trial is refitted on the whole tuning window, scored once on
  the test window, registered as ``challenger``, and its strategy values are written
  as Freqtrade's parameter file ``<userdir>/strategies/<Strategy>.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import multiprocessing
import os
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import mlflow
import optuna
from filelock import FileLock
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from common.errors import SpecError, TradingbotError
from experiments.finalise_claim import finalise_claim
from experiments.objective import (
    TuningData,
    check_tuning,
    declared_space,
    folds_of,
    objective_values,
    run_trial,
    score_test,
    strategy_defaults,
    suggest_trial,
)
from experiments.search_space import TuneConfig, strategy_values
from experiments.spec import ExperimentSpec
from experiments.trial_liveness import (
    INTERRUPTED,
    Heartbeat,
    describe_running,
    interrupted,
    queue_again,
    reclaim_stale,
    running_elsewhere,
)
from features.candles import data_window
from ml import tracking
from ml.bundle import package_versions
from ml.registry import log_bundle, register_finished_run, version_of_run
from ml.training import fit_final
from strategies.replay import StrategyParams, with_values

log = logging.getLogger(__name__)
# Optuna marks long-used APIs (metric names, its matplotlib plots) experimental.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

MAX_CONSECUTIVE_FAILURES = 3


class TuneError(TradingbotError):
    """The study cannot run: bad storage, a study made from another spec, failing trials."""


@dataclass(frozen=True)
class TuneRequest:
    spec: ExperimentSpec
    userdir: Path
    tracking_uri: str
    trials: int
    jobs: int = 1
    study: str | None = None
    storage: str | None = None
    timeout: float | None = None  # seconds for this invocation; finished trials are kept
    spec_text: str | None = None

    @property
    def tune(self) -> TuneConfig:
        if self.spec.tune is None:
            raise SpecError(
                f"spec {self.spec.name!r} has no [tune] section",
                hint="add [tune] with a [tune.space] table (see docs/TUNING.md)",
            )
        if self.spec.tune.strategy_parameters != "declared":
            return self.spec.tune
        return self.spec.tune.with_declared(declared_space(self.spec, self.userdir))

    @property
    def study_name(self) -> str:
        return self.study or self.spec.name


@dataclass(frozen=True)
class TuneResult:
    study: str
    storage: str
    trials: int
    complete: int
    pruned: int
    failed: int
    fits: int
    finished: bool  # reached the requested number of trials
    best_trial: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    model_name: str | None = None
    version: int | None = None
    params_file: Path | None = None
    parent_run_id: str | None = None
    running_elsewhere: list[str] = field(default_factory=list)  # unfinished: who still runs
    finalising_elsewhere: str | None = None  # finished, but another worker refits the best


class Counts(NamedTuple):
    complete: int
    pruned: int
    failed: int
    running: int

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed


# (trial counts, best value so far, what runs now: "#3 fold 2/4, #4 fold 1/4")
Progress = Callable[[Counts, float | None, str], None]


def activity(study: optuna.Study, folds: int) -> str:
    """The running trials and the folds each has finished (workers record
    ``folds_done`` after every fold), the first three by trial number."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    shown = [f"#{t.number} fold {t.user_attrs.get('folds_done', 0)}/{folds}" for t in running[:3]]
    return ", ".join(shown) + (f" +{len(running) - 3}" if len(running) > 3 else "")


# -- storage and study ---------------------------------------------------------------------


def journal_path(userdir: Path) -> Path:
    return userdir / "optuna" / "journal.log"


def open_storage(url: str | None, userdir: Path) -> BaseStorage:
    """The default journal file under the user dir, or the RDB at ``url``."""
    if url is None:
        path = journal_path(userdir)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Optuna's default (symlink) lock, the one optuna-dashboard also takes on this file.
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        try:
            return RDBStorage(url)
        except ImportError as exc:  # SQLAlchemy found no driver for the URL's dialect
            raise TuneError(
                f"cannot open Optuna storage {storage_label(url, userdir)}: {exc}",
                hint="postgresql:// uses psycopg 3 (installed with tradingbot); for another "
                "driver name it in the URL (postgresql+psycopg2://) and install it; "
                "mysql:// needs: .venv/bin/pip install pymysql",
            ) from exc
        except Exception as exc:
            raise TuneError(
                f"cannot open Optuna storage {storage_label(url, userdir)}: {exc}",
                hint="check the host, port, user, password and that the database exists",
            ) from exc
    raise TuneError(
        f"unsupported --storage {url!r}",
        hint="use sqlite:///path/optuna.db or postgresql://user@host/db (or omit it)",
    )


def storage_label(url: str | None, userdir: Path) -> str:
    """Where the study lives, for messages and tags (no password)."""
    if url is None:
        return str(journal_path(userdir))
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def make_sampler(tune: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    kind = tune.sampler or ("nsga2" if tune.multi_objective else "tpe")
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials)


def make_pruner(tune: TuneConfig, folds: int) -> optuna.pruners.BasePruner:
    kind = tune.pruner or ("none" if tune.multi_objective else "median")
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials, n_warmup_steps=0)
    if kind == "percentile":  # prune a trial unless it is in the top P% at this fold
        return optuna.pruners.PercentilePruner(
            tune.prune_percentile, n_startup_trials=tune.startup_trials, n_warmup_steps=0
        )
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=folds)
    return optuna.pruners.NopPruner()


def load_study(
    request: TuneRequest, storage: BaseStorage, *, sampler_seed: int, folds: int
) -> optuna.Study:
    tune = request.tune
    try:
        study = optuna.create_study(
            study_name=request.study_name,
            storage=storage,
            directions=list(tune.directions),
            sampler=make_sampler(tune, sampler_seed),
            pruner=make_pruner(tune, folds),
            load_if_exists=True,
        )
    except ValueError as exc:  # e.g. the study exists with other directions
        raise TuneError(f"study {request.study_name!r}: {exc}", hint="use another --study") from exc
    spec_hash = study.user_attrs.get("spec_hash")
    if spec_hash is None:
        study.set_metric_names(list(tune.objectives))
        study.set_user_attr("spec_hash", request.spec.hash)
        study.set_user_attr("spec", request.spec.model_dump(mode="json"))
    elif spec_hash != request.spec.hash:
        raise TuneError(
            f"study {request.study_name!r} was created from another spec (hash {spec_hash}, "
            f"this one is {request.spec.hash}): its trials would not be comparable",
            hint="resume with the same spec and options, or name a new study with --study",
        )
    return study


def counts(study: optuna.Study) -> Counts:
    trials = study.get_trials(deepcopy=False)
    state = [t.state for t in trials]
    return Counts(
        complete=state.count(TrialState.COMPLETE),
        pruned=state.count(TrialState.PRUNED),
        failed=state.count(TrialState.FAIL) - sum(map(interrupted, trials)),
        running=state.count(TrialState.RUNNING) + state.count(TrialState.WAITING),
    )


def best_value(study: optuna.Study) -> float | None:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    if len(study.directions) > 1:
        return None
    return float(study.best_value)


def reclaim(study: optuna.Study, storage: BaseStorage, client: MlflowClient) -> None:
    """Reclaim the trials of dead workers (any host) and end their MLflow runs as KILLED."""
    for trial in reclaim_stale(study, storage):
        log.warning(
            "%s was interrupted: its parameters are queued again",
            describe_running(trial, time.time()),
        )
        run_id = trial.user_attrs.get("mlflow_run_id")
        if isinstance(run_id, str):
            client.set_tag(run_id, "optuna.state", "interrupted")
            client.set_tag(run_id, "tradingbot.failure", "its worker died while running")
            client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.KILLED))


def pick_best(study: optuna.Study) -> FrozenTrial | None:
    """The best trial; with several objectives, the Pareto-optimal trial best on the first."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    if len(study.directions) == 1:
        return study.best_trial
    first_max = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    front = study.best_trials
    return max(front, key=lambda t: t.values[0] if first_max else -t.values[0])


# -- one worker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerArgs:
    request: TuneRequest
    worker: int
    parent_run_id: str
    experiment_id: str
    deadline: float | None  # time.time() after which no new trial starts
    parent_pid: int
    threads: int


class Worker:
    """Runs trials of one study until it has the requested number (or time is up)."""

    def __init__(self, args: WorkerArgs, data: TuningData | None = None) -> None:
        self.args = args
        request = args.request
        self.tune = request.tune
        self.data = data or TuningData.load(request.spec, self.tune, request.userdir)
        self.defaults = strategy_defaults(request.spec, request.userdir)
        self.folds = folds_of(self.data, request.spec)
        tracking.configure(request.tracking_uri, request.userdir)
        self.client = MlflowClient(request.tracking_uri, registry_uri=request.tracking_uri)
        lock_dir = request.userdir / "optuna"
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(lock_dir / f"{request.study_name}.lock"))
        # Several workers share the cores: each gets its share (one worker keeps the defaults).
        self.threads = args.threads if request.jobs > 1 else None

    def open(self) -> optuna.Study:
        request = self.args.request
        storage = open_storage(request.storage, request.userdir)
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
        return os.getppid() == self.args.parent_pid or self.args.worker == 0

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
            fits = 0
            state = TrialState.FAIL
            values: list[float] | None = None
            error: str | None = None
            try:
                params, spec, strategy = suggest_trial(
                    trial, self.args.request.spec, self.tune, self.defaults
                )
                self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])

                def on_fold(step: int, metrics: dict[str, float]) -> None:
                    nonlocal fits
                    fits += 1
                    stamp = int(time.time() * 1000)
                    self.client.log_batch(
                        run_id, metrics=[Metric(k, v, stamp, step) for k, v in metrics.items()]
                    )
                    trial.set_user_attr("folds_done", step + 1)  # for the progress display
                    if on_progress is not None:
                        on_progress()
                    if not self.tune.multi_objective:
                        trial.report(metrics[self.tune.objectives[0]], step)
                        if trial.should_prune():
                            raise optuna.TrialPruned(f"pruned after fold {step}")

                outcome = run_trial(self.data, spec, strategy, on_fold, self.threads)
                values = objective_values(outcome.metrics, self.tune)
                trial.set_user_attr("metrics", outcome.metrics)
                state = TrialState.COMPLETE
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except Exception as exc:  # one bad parameter combination must not end the study
                error = f"{type(exc).__name__}: {exc}"[:2000]
                log.warning("trial %d failed: %s", trial.number, error)
                trial.set_user_attr("error", error)
            except BaseException:  # Ctrl-C / SIGTERM: not the trial's fault, run it again later
                trial.set_user_attr(INTERRUPTED, True)
                study.tell(trial, state=TrialState.FAIL)
                queue_again(study, trial.number, trial.params)
                self._end_run(run_id, "interrupted", fits, started, RunStatus.KILLED)
                raise
            trial.set_user_attr("fits", fits)
            if state == TrialState.COMPLETE:
                study.tell(trial, values)
            else:
                study.tell(trial, state=state)
            status = RunStatus.FAILED if state == TrialState.FAIL else RunStatus.FINISHED
            self._end_run(run_id, state.name, fits, started, status, values, error)
            return state

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


# -- the whole tune --------------------------------------------------------------------------


def tune(request: TuneRequest, progress: Progress | None = None) -> TuneResult:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress bar says it all
    tune_config = request.tune
    if request.trials < 1:
        raise SpecError("--trials must be at least 1")
    if request.jobs < 1:
        raise SpecError("--jobs must be at least 1")
    check_tuning(request.spec, tune_config, strategy_defaults(request.spec, request.userdir))
    data = TuningData.load(request.spec, tune_config, request.userdir)
    folds = folds_of(data, request.spec)
    storage = open_storage(request.storage, request.userdir)
    study = load_study(request, storage, sampler_seed=request.spec.seed, folds=folds)
    client = tracking.configure(request.tracking_uri, request.userdir)
    reclaim(study, storage, client)
    experiment = tracking.experiment_id(client, request.spec.name, request.userdir)
    tracking.fail_stale_runs(client, experiment)
    parent_run_id = _parent_run(client, experiment, study, request, data)
    deadline = time.time() + request.timeout if request.timeout else None

    def report() -> None:
        if progress is not None:
            progress(counts(study), best_value(study), activity(study, folds))

    report()
    args = WorkerArgs(
        request=request,
        worker=0,
        parent_run_id=parent_run_id,
        experiment_id=experiment,
        deadline=deadline,
        parent_pid=os.getpid(),
        threads=max(1, (os.cpu_count() or 1) // request.jobs),
    )
    try:
        if request.jobs == 1:
            worker = Worker(args, data)
            worker.run(worker.open(), on_progress=report)
        else:
            _run_processes(args, request.jobs, report)
    except KeyboardInterrupt:
        client.set_terminated(parent_run_id, status=RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        client.set_terminated(parent_run_id, status=RunStatus.to_string(RunStatus.FAILED))
        raise
    study = optuna.load_study(study_name=request.study_name, storage=storage)
    final = counts(study)
    report()
    fits = sum(int(t.user_attrs.get("fits", 0)) for t in study.get_trials(deepcopy=False))
    result = TuneResult(
        study=request.study_name,
        storage=storage_label(request.storage, request.userdir),
        trials=request.trials,
        complete=final.complete,
        pruned=final.pruned,
        failed=final.failed,
        fits=fits,
        finished=final.finished >= request.trials,
        parent_run_id=parent_run_id,
    )
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
        "optuna.storage": storage_label(request.storage, request.userdir),
        "spec_hash": request.spec.hash,
        "data_sha256": window.sha256,
        "data.first": window.first.isoformat(),
        "data.last": window.last.isoformat(),
        "git_commit": tracking.git_commit(),
        "seed": str(request.spec.seed),
        "model_kind": request.spec.model.kind,
        **data.windows(),
        **tracking.process_tags(),
    }
    run = client.create_run(experiment, tags=tags)
    run_id = str(run.info.run_id)
    tune_config = request.tune
    params = {
        "objective": ",".join(tune_config.objectives),
        "sampler": tune_config.sampler or ("nsga2" if tune_config.multi_objective else "tpe"),
        "pruner": tune_config.pruner or ("none" if tune_config.multi_objective else "median"),
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


def _finalise(
    request: TuneRequest,
    data: TuningData,
    study: optuna.Study,
    client: MlflowClient,
    parent_run_id: str,
    result: TuneResult,
) -> TuneResult:
    """Refit the best trial on the tuning window, score it once on the test window,
    register it as challenger and write the strategy parameter file. The caller holds
    the study's finalise claim."""
    best = pick_best(study)
    done = client.get_run(parent_run_id).data
    name = request.spec.name
    registered = (
        version_of_run(client, name, parent_run_id, {"optuna.trial": str(best.number)})
        if best is not None and done.tags.get("best_trial") == str(best.number)
        else None
    )
    if best is not None and registered is not None:
        # finalised by an earlier call (perhaps killed before it wrote the parameter
        # file or finished registering): nothing new to refit, the rest is redone
        client.set_terminated(parent_run_id, status=RunStatus.to_string(RunStatus.FINISHED))
        version = register_finished_run(
            client,
            name,
            parent_run_id,
            str(registered.source),
            tags={},
            key={"optuna.trial": str(best.number)},
        )
        prefix = len("test.")
        return dataclasses.replace(
            result,
            best_trial=best.number,
            best_params=dict(best.params),
            validation={k: float(v) for k, v in best.user_attrs.get("metrics", {}).items()},
            test={k[prefix:]: v for k, v in done.metrics.items() if k.startswith("test.")},
            model_name=name,
            version=version,
            params_file=_write_strategy_file(request, _tuned_strategy(request, best)),
        )
    if best is None:
        client.set_tag(parent_run_id, "tune.state", "no complete trial")
        client.set_terminated(parent_run_id, status=RunStatus.to_string(RunStatus.FINISHED))
        raise TuneError(
            f"study {request.study_name!r} has no complete trial to refit",
            hint="all trials were pruned or failed: see their MLflow runs; widen the space or add trials",
        )
    spec = request.spec.with_params(best.params)
    strategy = _tuned_strategy(request, best)
    validation = {k: float(v) for k, v in best.user_attrs.get("metrics", {}).items()}
    with (
        tempfile.TemporaryDirectory() as tmp,
        tracking.tracked_run(run_id=parent_run_id),
    ):
        workdir = Path(tmp)
        # Tags, not params: MLflow params are immutable, and a continued study can find
        # a better trial than the one an earlier call finalised (same keys: the spec
        # hash pins the space).
        mlflow.set_tags(
            {
                "best_trial": str(best.number),
                "tune.state": "finished",
                **{f"best.{k}": str(v) for k, v in best.params.items()},
            }
        )
        tracking.log_metrics(validation, prefix="validation.")
        _log_study(study, workdir)
        bundle = fit_final(data.job(spec))
        test = score_test(data, bundle, spec, strategy)
        tracking.log_metrics(test, prefix="test.")
        if strategy is not None:
            mlflow.log_dict(strategy.freqtrade_file(), f"strategy/{strategy.strategy}.json")
        model_uri, _ = log_bundle(bundle, workdir, data.tuning_candles)
    # Registered once the run has FINISHED, keyed by run and trial: a call killed from
    # here on is completed by the next one without a second version or a refit.
    version = register_finished_run(
        client,
        spec.name,
        parent_run_id,
        model_uri,
        tags={
            "spec_hash": spec.hash,
            "data_sha256": data_window(
                data.tuning_candles, spec.data.pair, spec.data.timeframe
            ).sha256,
            "optuna.study": request.study_name,
        },
        key={"optuna.trial": str(best.number)},
    )
    params_file = _write_strategy_file(request, strategy)
    return dataclasses.replace(
        result,
        best_trial=best.number,
        best_params=dict(best.params),
        validation=validation,
        test=test,
        model_name=spec.name,
        version=version,
        params_file=params_file,
    )


def _tuned_strategy(request: TuneRequest, best: FrozenTrial) -> StrategyParams | None:
    """The best trial's strategy values over the strategy's defaults (None: no strategy space)."""
    if not request.tune.uses_strategy:
        return None
    return with_values(
        strategy_defaults(request.spec, request.userdir), strategy_values(best.params)
    )


def _write_strategy_file(request: TuneRequest, strategy: StrategyParams | None) -> Path | None:
    """Freqtrade's parameter file of ``strategy``. Written on every finalising call, so
    one killed after registering still gets it."""
    return None if strategy is None else strategy.write(request.userdir / "strategies")


def _objective_history(study: optuna.Study, index: int, name: str) -> Any:
    from optuna.visualization import matplotlib as optuna_plots

    return optuna_plots.plot_optimization_history(
        study, target=lambda trial: trial.values[index], target_name=name
    )


def _log_study(study: optuna.Study, workdir: Path) -> None:
    """The trials table and Optuna's history / importance (or Pareto front) plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    table = study.trials_dataframe(
        attrs=("number", "state", "values", "params", "duration", "user_attrs")
    )
    table.to_csv(workdir / "trials.csv", index=False)
    mlflow.log_artifact(str(workdir / "trials.csv"), artifact_path="optuna")
    plots: dict[str, Callable[[], Any]] = {}
    if len(study.directions) == 1:
        plots["history.png"] = lambda: optuna_plots.plot_optimization_history(study)
        plots["importance.png"] = lambda: optuna_plots.plot_param_importances(study)
        plots["intermediate.png"] = lambda: optuna_plots.plot_intermediate_values(study)
    else:
        plots["pareto_front.png"] = lambda: optuna_plots.plot_pareto_front(study)
        for index, name in enumerate(study.metric_names or []):
            plots[f"history_{name}.png"] = functools.partial(_objective_history, study, index, name)
    for filename, draw in plots.items():
        try:
            axes = draw()
        except (ValueError, RuntimeError) as exc:  # e.g. importance needs 2+ complete trials
            log.info("skipped Optuna plot %s: %s", filename, exc)
            continue
        figure = axes.figure if hasattr(axes, "figure") else plt.gcf()
        figure.set_size_inches(9, 5)
        figure.savefig(workdir / filename, dpi=100, bbox_inches="tight")
        plt.close(figure)
        mlflow.log_artifact(str(workdir / filename), artifact_path="optuna")
