"""New SQLite tracking stores, copied from an empty one that MLflow built once.

MLflow creates a SQLite store by running every one of its schema migrations, about
1.7 s on this machine, for each new user dir, test and benchmark. An empty store
differs from another only in its default experiment (its artefact location and
time), which MLflow adds when it opens a store that lacks it. So the first store of an
MLflow version is built by MLflow itself into a per-machine cache, without that
experiment, and every new store is a copy of it (a few milliseconds).

The cache is ``$XDG_CACHE_HOME/tradingbot`` (default ``~/.cache/tradingbot``), one file
per MLflow version, written whole or not at all. Where it cannot be written, MLflow
creates the store as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import mlflow

from common.atomic import atomic_path, file_lock

_LOG = logging.getLogger("tradingbot.tracking")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tradingbot"


def template_path() -> Path:
    """The empty store of the installed MLflow version."""
    return cache_dir() / f"mlflow-{mlflow.__version__}-empty.db"


def create_store(database: Path) -> bool:
    """Create the SQLite store ``database`` (which must not exist yet) as a copy of the
    empty template, building the template first if this machine has none. Returns
    False, having written nothing at ``database``, where the template cannot be had:
    MLflow then creates the store itself on first use. Either way, a write-ahead log
    left beside ``database`` is removed first: it belongs to a database that is gone, and
    SQLite would replay it into the new one (the old store's pages over the empty one's)."""
    for log in ("-wal", "-shm"):
        database.with_name(database.name + log).unlink(missing_ok=True)
    try:
        template = _template()
    except (OSError, sqlite3.Error) as exc:
        _LOG.debug("no store template (%s); MLflow creates %s", exc, database)
        return False
    with atomic_path(database) as tmp:
        shutil.copyfile(template, tmp)
    return True


def _template() -> Path:
    template = template_path()
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(template.with_name(template.name + ".lock")):  # one builder a machine
        if not template.exists():
            _build(template)
    return template


def _build(template: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with tempfile.TemporaryDirectory(dir=template.parent) as scratch:
        database = Path(scratch) / "empty.db"
        # the tracking store's creation makes every table, the registry's included
        store = SqlAlchemyStore(  # type: ignore[no-untyped-call]
            f"sqlite:///{database}", str(Path(scratch) / "artifacts")
        )
        store.engine.dispose()
        with contextlib.closing(sqlite3.connect(database)) as db, db:
            # each store gets its own default experiment, from MLflow, when first opened
            db.execute("DELETE FROM experiments WHERE experiment_id = 0")
        with atomic_path(template) as tmp:
            shutil.copyfile(database, tmp)
