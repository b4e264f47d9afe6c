"""MLflow tracking: the store, experiments, run hygiene and logging helpers.

Default store: ``sqlite:///<userdir>/mlflow.db`` with artefacts under
``<userdir>/mlartifacts`` (MLflow 3 refuses the plain file store). The caller
(the CLI) decides the URI: ``MLFLOW_TRACKING_URI`` overrides the default there.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import logging
import os
import socket
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from common.atomic import file_lock, pid_alive
from common.context import default_tracking_uri as default_tracking_uri
from common.errors import TradingbotError
from common.layout import UserDir
from features.candles import DataWindow
from ml.observability import bind
from ml.store_template import create_store
from ml.ui_view import view_tags

PID_TAG = "tradingbot.pid"
HOST_TAG = "tradingbot.host"
# why a backtest ran when it was not asked for itself (e.g. a paper replay's comparison)
PURPOSE_TAG = "tradingbot.purpose"


def artifact_root(layout: UserDir) -> Path:
    return layout.mlflow_artifacts.resolve()


class StoreError(TradingbotError):
    """The MLflow store cannot be used as it is."""


def sqlite_store_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :])


# stores found whole in this process, as (path, inode, size, mtime): the check reads
# the whole file, and a whitelist's jobs configure the store several times each
_FOUND_WHOLE: set[tuple[str, int, int, int]] = set()


def check_sqlite_store(path: Path) -> None:
    """Refuse a store file that exists but is not a whole SQLite database.

    MLflow would silently make a new, empty store over a 0-byte file, and fail with
    a traceback deep inside SQLAlchemy on a truncated one. A file this process found
    whole and that has not changed since (same inode, size and modification time) is
    not read again."""
    if not path.exists():
        return
    hint = (
        "restore it from a backup (tradingbot restore <userdir>/backups/<time> --only mlflow), "
        "or move it away to start an empty store"
    )
    # The file is read through SQLite only: a descriptor of it opened and closed here
    # would drop the locks SQLite holds on it for this process's open connections.
    status = path.stat()
    seen = (str(path.resolve()), status.st_ino, status.st_size, status.st_mtime_ns)
    if seen in _FOUND_WHOLE:
        return
    if status.st_size == 0:
        raise StoreError(
            f"MLflow store {path} is empty (0 bytes): its runs and models are gone", hint=hint
        )
    try:
        # not mode=ro: a store in write-ahead-log mode needs its shared-memory file,
        # which a read-only connection cannot create; query_only keeps it a reader
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA query_only = ON")
            verdict = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise StoreError(f"MLflow store {path} is not an SQLite database", hint=hint) from exc
        verdict = str(exc)
    if verdict != "ok":
        raise StoreError(f"MLflow store {path} is damaged ({verdict})", hint=hint)
    _FOUND_WHOLE.add(seen)


# Where MLflow records absolute artefact locations (MLflow 3 schema).
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
)


def relocate_artifacts(database: Path, root: Path) -> list[str]:
    """Point artefact locations recorded under another ``.../mlartifacts`` at ``root``.

    MLflow stores each location as an absolute URI. In a copied or restored user dir
    they still name the original's folder, so the copy would read (and write) the
    original's artefacts, and load nothing once it is gone. Returns the old roots
    that were rewritten; idempotent."""
    new = root.as_uri()
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "experiments" not in tables:
            return []
        locations = [
            str(row[0])
            for row in db.execute("SELECT artifact_location FROM experiments")
            if row[0] and "/mlartifacts/" in str(row[0]) and str(row[0]).startswith("file://")
        ]
        old_roots = {loc[: loc.index("/mlartifacts/") + len("/mlartifacts")] for loc in locations}
        old_roots.discard(new)
        with db:
            for old in sorted(old_roots):
                for table, column in ARTIFACT_COLUMNS:
                    if table not in tables:
                        continue
                    db.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?)"
                        f" WHERE substr({column}, 1, ?) = ?",
                        (new, len(old) + 1, len(old) + 1, old + "/"),
                    )
    return sorted(old_roots)


@contextlib.contextmanager
def _store_lock(database: Path) -> Iterator[None]:
    """The lock that serialises creating the store; skipped for an existing store on a
    read-only disk, which nobody can create or change (reading it needs no lock)."""
    lock = database.with_name(database.name + ".lock")
    try:
        lock.touch()
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM) or not database.exists():
            raise
        yield
        return
    with file_lock(lock):
        yield


def configure(tracking_uri: str, layout: UserDir) -> MlflowClient:
    """Point MLflow at ``tracking_uri`` (telemetry stays off unless the user opted in).

    A tracking server must answer first (:func:`require_reachable_server`). A local
    SQLite store is checked first and created under a lock (a copy of an empty
    store: :mod:`ml.store_template`): two commands
    started at once on a new user dir would otherwise both run MLflow's schema
    migrations, and one would crash in alembic."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    require_reachable_server(tracking_uri)  # before anything is written
    layout.root.mkdir(parents=True, exist_ok=True)
    use_uri(tracking_uri)
    database = sqlite_store_path(tracking_uri)
    if database is None:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    check_sqlite_store(database)
    with _store_lock(database):
        if not database.exists():
            create_store(database)  # a copy of an empty store, not MLflow's migrations
        # MlflowClient opens (and if it is still missing creates) the tracking store;
        # the registry store opens on its first call
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_registered_models(max_results=1)
        use_write_ahead_log(database)
        checkpoint_at_exit(database)
        if database.resolve().parent == layout.root.resolve():  # the user dir's own store
            for old in relocate_artifacts(database, artifact_root(layout)):
                logging.getLogger("tradingbot.tracking").warning(
                    "artefact locations under %s now point at %s (a copied or restored user dir)",
                    old,
                    artifact_root(layout),
                )
    return client


def use_write_ahead_log(database: Path) -> None:
    """Put a SQLite store in SQLite's write-ahead-log mode (kept in the file). In the
    default mode a writer waits for every reader and each reader for the writer, so
    jobs that record at once (a whitelist's pairs on two workers) queue behind each
    other, and bench/scale.py's second Ray worker gained 1.4-1.5x instead of 1.8-2.0x
    (docs/BACKTESTING.md, "Scaling out"). A store in use elsewhere keeps its mode until the
    next command finds it free; a network file system, where SQLite's shared memory
    does not work, should use a tracking server instead (docs/RUNBOOK.md)."""
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=5.0)) as db:
            if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        pass  # busy: another process has it open; the next command tries again


_CHECKPOINTED: set[Path] = set()  # stores this process checkpoints at its end


def checkpoint_at_exit(database: Path) -> None:
    """At this process's end, move the SQLite store's write-ahead log into the database
    file and empty it. A command ends without closing MLflow's connections
    (:mod:`common.process_end`), so nothing else would: the last commits would stay in
    ``mlflow.db-wal``, lost to a copy of ``mlflow.db`` alone, and replayed into the wrong
    database if ``mlflow.db`` alone were deleted and made again."""
    key = database.resolve()
    if key not in _CHECKPOINTED:
        _CHECKPOINTED.add(key)
        atexit.register(_checkpoint, key)


def _checkpoint(database: Path) -> None:
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=5.0)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # busy or gone: the log stays beside it, where SQLite reads it next time


# seconds a tracking server has to answer before a command gives up on it
REACHABILITY_TIMEOUT_S = 5.0
_ANSWERED: set[str] = set()  # tracking servers that answered in this process


def require_reachable_server(
    tracking_uri: str, *, timeout_s: float = REACHABILITY_TIMEOUT_S
) -> None:
    """Raise StoreError, naming the server, unless an ``http(s)://`` tracking server
    answers within ``timeout_s``. Any HTTP answer counts (a server that wants a login is
    there); without this check MLflow's client retries for minutes, then prints a
    traceback. Other stores are not checked here."""
    if not tracking_uri.startswith(("http://", "https://")) or tracking_uri in _ANSWERED:
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            pass
    except urllib.error.HTTPError:
        pass  # it answered
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StoreError(
            f"MLflow tracking server {tracking_uri} is not reachable ({reason})",
            hint="start it (docs/RUNBOOK.md), check MLFLOW_TRACKING_URI, or unset it to "
            "use the user dir's own store",
        ) from None
    _ANSWERED.add(tracking_uri)  # a command configures the store several times: ask once


def use_uri(tracking_uri: str) -> None:
    """Make ``tracking_uri`` MLflow's tracking and registry URI in this process only.

    ``mlflow.set_*_uri`` also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI into
    the process environment, where they would later read as the *user's* choice
    (and leak into child processes): they are put back as they were.
    """
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# Our experiments hold model training, tuning and backtest runs, not GenAI traces; with
# the view state of ml.ui_view they open in the UI's model-training view, figures as columns.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def experiment_id(client: MlflowClient, name: str, layout: UserDir) -> str:
    """The id of experiment ``name``, created with artefacts under the user dir if new,
    and marked as model development with the comparison view of :mod:`ml.ui_view` for
    the MLflow UI (older experiments too).

    With a remote tracking server the server decides where artefacts go.
    """
    tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, **view_tags(name)}
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        for key, value in tags.items():
            if existing.tags.get(key) != value:
                client.set_experiment_tag(existing.experiment_id, key, value)
        return str(existing.experiment_id)
    location = None
    if client.tracking_uri.startswith("sqlite:"):
        location = (artifact_root(layout) / name).as_uri()
    return str(client.create_experiment(name, artifact_location=location, tags=tags))


def process_alive(pid: int) -> bool:
    """Does a process with this pid exist on this machine?"""
    return pid_alive(pid)


def fail_stale_runs(client: MlflowClient, experiment: str) -> list[str]:
    """Mark runs left RUNNING by a process of this host that no longer exists as FAILED."""
    host = socket.gethostname()
    stale = []
    runs = client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'")
    for run in runs:
        tags = run.data.tags
        if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit():
            continue
        if process_alive(int(tags[PID_TAG])) and int(tags[PID_TAG]) != os.getpid():
            continue
        client.set_tag(run.info.run_id, "tradingbot.failure", "its process died while running")
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.FAILED))
        stale.append(run.info.run_id)
    return stale


def fail_lost_attempts(
    client: MlflowClient, experiment: str, parent_run_id: str, job_tags: Mapping[str, str]
) -> list[str]:
    """Before a job runs again (an executor's retry after its worker was lost): its
    earlier attempt's runs, still RUNNING under the same parent with the same ``job_tags``,
    and their fold runs, marked FAILED. A job runs once at a time, so such a run cannot
    be live, on whichever machine it ran; the stale-run rule of :func:`fail_stale_runs`
    sees only this machine's processes."""
    match = " and ".join(f"tags.{key} = '{value}'" for key, value in job_tags.items())
    running = "attributes.status = 'RUNNING'"
    lost = client.search_runs(
        [experiment],
        filter_string=f"{running} and tags.mlflow.parentRunId = '{parent_run_id}' and {match}",
    )
    failed = []
    for run in lost:
        folds = client.search_runs(
            [experiment],
            filter_string=f"{running} and tags.mlflow.parentRunId = '{run.info.run_id}'",
        )
        for lost_run in [*folds, run]:
            client.set_tag(
                lost_run.info.run_id, "tradingbot.failure", "an earlier attempt of its job was lost"
            )
            client.set_terminated(
                lost_run.info.run_id, status=RunStatus.to_string(RunStatus.FAILED)
            )
            failed.append(lost_run.info.run_id)
    return failed


def process_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def lineage(
    window: DataWindow | None = None,
    *,
    spec_hash: str | None = None,
    feature_spec_hash: str | None = None,
    seed: int | None = None,
    model_kind: str | None = None,
) -> dict[str, str]:
    """The reproducibility tags of a run, with the same keys for training, tuning and
    backtests: the code (``git_commit``), the process that ran it, and what of the data
    window, spec, seed and model the run has."""
    tags = {"git_commit": git_commit(), **process_tags()}
    if window is not None:
        tags.update(
            {
                "pair": window.pair,
                "timeframe": window.timeframe,
                "data_sha256": window.sha256,
                "data.first": window.first.isoformat(),
                "data.last": window.last.isoformat(),
                "data.rows": str(window.rows),
            }
        )
    optional = {
        "spec_hash": spec_hash,
        "feature_spec_hash": feature_spec_hash,
        "seed": None if seed is None else str(seed),
        "model_kind": model_kind,
    }
    tags.update({key: value for key, value in optional.items() if value is not None})
    return tags


@contextmanager
def tracked_run(**start_kwargs: Any) -> Iterator[mlflow.ActiveRun]:
    """``mlflow.start_run`` that ends FAILED on errors and KILLED on Ctrl-C."""
    run = mlflow.start_run(**start_kwargs)
    try:
        with bind(run=run.info.run_id):  # every log line inside names the run
            yield run
    except KeyboardInterrupt:
        mlflow.end_run(status=RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow.end_run(status=RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(status=RunStatus.to_string(RunStatus.FINISHED))


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> flat ``a.b.c`` params (values as compact JSON for lists)."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(value, default=str)[:6000]
        else:
            flat[name] = str(value)
    return flat


def git_commit(cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"
