"""Where studies live: Optuna storages, samplers and pruners, loading and counting a study."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import optuna
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from common.layout import UserDir
from experiments.tuning.liveness import (
    describe_running,
    interrupted,
    reclaim_stale,
)
from experiments.tuning.request import Counts, TuneError, TuneRequest
from experiments.tuning.space import TuneConfig

# Optuna marks long-used APIs (metric names, its matplotlib plots) experimental.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

log = logging.getLogger(__name__)


def journal_path(layout: UserDir) -> Path:
    return layout.optuna_journal


def open_storage(url: str | None, layout: UserDir) -> BaseStorage:
    """The default journal file under the user dir, or the RDB at ``url``."""
    if url is None:
        path = journal_path(layout)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Optuna's default (symlink) lock, the one optuna-dashboard also takes on this file.
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        try:
            return RDBStorage(url)
        except ImportError as exc:  # SQLAlchemy found no driver for the URL's dialect
            raise TuneError(
                f"cannot open Optuna storage {storage_label(url, layout)}: {exc}",
                hint="postgresql:// uses psycopg 3 (installed with tradingbot); for another "
                "driver name it in the URL (postgresql+psycopg2://) and install it; "
                "mysql:// needs: .venv/bin/pip install pymysql",
            ) from exc
        except Exception as exc:
            raise TuneError(
                f"cannot open Optuna storage {storage_label(url, layout)}: {exc}",
                hint="check the host, port, user, password and that the database exists",
            ) from exc
    raise TuneError(
        f"unsupported --storage {url!r}",
        hint="use sqlite:///path/optuna.db or postgresql://user@host/db (or omit it)",
    )


def storage_label(url: str | None, layout: UserDir) -> str:
    """Where the study lives, for messages and tags (no password)."""
    if url is None:
        return str(journal_path(layout))
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def make_sampler(tune: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    kind = tune.sampler_kind
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials)


def make_pruner(tune: TuneConfig, folds: int) -> optuna.pruners.BasePruner:
    kind = tune.pruner_kind
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


def activity(study: optuna.Study, folds: int) -> str:
    """The running trials and the folds each has finished (workers record
    ``folds_done`` after every fold), the first three by trial number."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    shown = [f"#{t.number} fold {t.user_attrs.get('folds_done', 0)}/{folds}" for t in running[:3]]
    return ", ".join(shown) + (f" +{len(running) - 3}" if len(running) > 3 else "")


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
