"""A command ends without closing MLflow's connections (common.process_end); its SQLite
store is still complete in ``mlflow.db`` alone afterwards."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

from tests.conftest import run_python


def test_the_store_is_checkpointed_when_a_command_ends_without_teardown(
    tmp_path: Path,
) -> None:
    userdir = tmp_path / "ud"
    command = (
        "from pathlib import Path\n"
        "from common.layout import UserDir\n"
        "from common.process_end import exit_without_teardown\n"
        "from ml.tracking import configure, default_tracking_uri\n"
        f"userdir = Path({str(userdir)!r})\n"
        "client = configure(default_tracking_uri(userdir), UserDir(userdir))\n"
        "experiment = client.create_experiment('kept')\n"
        "run = client.create_run(experiment, run_name='the last commit')\n"
        "client.set_terminated(run.info.run_id)\n"
        "exit_without_teardown(0)\n"
    )
    done = run_python(command)
    assert done.returncode == 0, done.stdout
    database = userdir / "mlflow.db"
    log = database.with_name(database.name + "-wal")
    assert not log.exists() or log.stat().st_size == 0, "commits left in the log"
    alone = tmp_path / "copy.db"
    shutil.copyfile(database, alone)  # what a copy of the store file alone holds
    with contextlib.closing(sqlite3.connect(alone)) as db:
        names = [row[0] for row in db.execute("SELECT name FROM runs")]
    assert names == ["the last commit"]
