"""A new SQLite store is a copy of an empty store MLflow built once: the same schema and
default experiment as MLflow's own creation, the template built once a machine."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from common.layout import UserDir
from ml.store_template import create_store, template_path
from ml.tracking import configure, default_tracking_uri
from tests.conftest import run_python, run_together


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tradingbot"


def _schema(database: Path) -> tuple[dict[str, list[str]], str]:
    """Each table's and index's definition, as its sorted lines: MLflow's own migrations
    write a table's constraints in an order that changes from one creation to the next."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        objects = db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
        definitions = {
            str(name): sorted(line.strip().rstrip(",") for line in str(sql).splitlines())
            for name, sql in objects
        }
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return definitions, revision


def test_a_copied_store_is_what_mlflow_creates(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mlflows = tmp_path / "mlflow" / "mlflow.db"
    mlflows.parent.mkdir()
    SqlAlchemyStore(f"sqlite:///{mlflows}", "./mlruns").engine.dispose()
    userdir = tmp_path / "ud"
    client = configure(default_tracking_uri(userdir), UserDir(userdir))

    assert template_path().parent == cache and template_path().exists()
    assert _schema(userdir / "mlflow.db") == _schema(mlflows)
    (default,) = client.search_experiments()
    reference = SqlAlchemyStore(f"sqlite:///{mlflows}", "./mlruns").get_experiment("0")
    assert (default.experiment_id, default.name) == ("0", "Default")
    assert default.artifact_location == reference.artifact_location  # MLflow adds it on open
    assert default.creation_time is not None and default.creation_time > 0
    experiment = client.create_experiment("new")
    assert experiment == "1"  # ids go on as in a store MLflow made


def test_the_template_is_built_once(cache: Path, tmp_path: Path) -> None:
    assert create_store(tmp_path / "a.db")
    built = template_path().stat()
    assert create_store(tmp_path / "b.db")
    again = template_path().stat()
    assert (again.st_ino, again.st_mtime_ns) == (built.st_ino, built.st_mtime_ns)
    assert (tmp_path / "a.db").read_bytes() == (tmp_path / "b.db").read_bytes()


def test_without_a_writable_cache_mlflow_creates_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert not create_store(tmp_path / "nothing.db")
    assert not (tmp_path / "nothing.db").exists()
    assert list(tmp_path.iterdir()) == [blocked]  # no temporary file left
    userdir = tmp_path / "ud"
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    assert [e.name for e in client.search_experiments()] == ["Default"]


BUILD = """
import sys
from pathlib import Path
from common.layout import UserDir
from ml.tracking import configure, default_tracking_uri
userdir = Path(sys.argv[1])
configure(default_tracking_uri(userdir), UserDir(userdir)).create_experiment("e")
"""


def test_processes_that_need_the_template_at_once_build_it_once(
    cache: Path, tmp_path: Path
) -> None:
    environment = {**os.environ, "XDG_CACHE_HOME": str(cache.parent)}
    commands = [[sys.executable, "-c", BUILD, str(tmp_path / f"ud{i}")] for i in range(3)]
    done = run_together(commands, env=environment)
    for process in done:
        assert process.returncode == 0, process.stderr
    assert sum("Creating initial MLflow database tables" in p.stderr for p in done) == 1
    assert sorted(p.name for p in cache.iterdir()) == [
        template_path().name,
        template_path().name + ".lock",
    ]


def test_a_log_left_by_a_deleted_store_is_not_replayed_into_the_new_one(
    cache: Path, tmp_path: Path
) -> None:
    """``mlflow.db`` deleted alone, its write-ahead log left beside it (a command killed,
    or ended without a checkpoint): the store made again is empty, not the old store's
    logged pages over the empty one's."""
    userdir = tmp_path / "ud"
    uri = default_tracking_uri(userdir)
    database = UserDir(userdir).mlflow_db
    client = configure(uri, UserDir(userdir))
    old = client.create_experiment("old")
    client.create_run(old)
    # a second connection keeps the log from being folded back when the first closes
    with contextlib.closing(sqlite3.connect(database)) as held:
        held.execute("PRAGMA wal_autocheckpoint=0")
        client.create_run(old)  # in the log, not yet in the database file
        log = database.with_name(database.name + "-wal")
        assert log.stat().st_size > 0
        kept = log.read_bytes()
    database.unlink()
    log.write_bytes(kept)  # what a deletion of mlflow.db alone leaves

    # the next command, a process of its own (this one holds the old store open)
    probe = (
        "from pathlib import Path\n"
        "from common.layout import UserDir\n"
        "from ml.tracking import configure\n"
        f"client = configure({uri!r}, UserDir(Path({str(userdir)!r})))\n"
        "new = client.create_experiment('new')\n"
        "client.create_run(new)\n"
        "print('EXPERIMENTS', sorted(e.name for e in client.search_experiments()))\n"
    )
    shown = run_python(probe, env={**os.environ, "XDG_CACHE_HOME": str(cache.parent)})
    assert shown.returncode == 0, shown.stdout
    assert "EXPERIMENTS ['Default', 'new']" in shown.stdout, shown.stdout
