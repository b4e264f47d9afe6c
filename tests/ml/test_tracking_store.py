"""The embedded MLflow store: created once under a lock, refused when damaged,
artefact locations follow a copied user dir."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from common.layout import UserDir
from ml.tracking import StoreError, check_sqlite_store, configure, default_tracking_uri
from tests.conftest import CliResult, run_together

CREATE = """
import sys
from pathlib import Path
from common.layout import UserDir
from ml.tracking import configure, default_tracking_uri, experiment_id
userdir = Path(sys.argv[1])
client = configure(default_tracking_uri(userdir), UserDir(userdir))
experiment_id(client, "e" + sys.argv[2], UserDir(userdir))
"""


@pytest.mark.parametrize("attempt", range(3))
def test_commands_started_together_on_a_new_user_dir_both_create_the_store(
    tmp_path: Path, attempt: int
) -> None:
    userdir = tmp_path / "ud"
    commands = [[sys.executable, "-c", CREATE, str(userdir), str(i)] for i in range(3)]
    for process in run_together(commands):
        assert process.returncode == 0, process.stderr
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    assert {"e0", "e1", "e2"} <= {e.name for e in client.search_experiments()}


def test_an_empty_store_file_is_refused_not_replaced(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    userdir = tmp_path / "ud"
    userdir.mkdir()
    (userdir / "mlflow.db").write_bytes(b"")
    with pytest.raises(StoreError, match="empty"):
        configure(default_tracking_uri(userdir), UserDir(userdir))
    assert (userdir / "mlflow.db").stat().st_size == 0
    result = cli("report", "--userdir", userdir)
    assert result.code == 2 and "is empty (0 bytes)" in result.err and "restore" in result.err
    assert "Traceback" not in result.err


def test_a_truncated_store_is_refused_with_a_one_line_error(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    userdir = tmp_path / "ud"
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    for i in range(40):  # enough pages that half the file loses some
        run = client.create_run(client.create_experiment(f"x{i}"))
        client.log_param(run.info.run_id, "p", "v" * 500)
    database = userdir / "mlflow.db"
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="damaged"):
        check_sqlite_store(database)
    for command in (["report"], ["promote", "m", "--version", "1", "--reason", "r"]):
        result = cli(*command, "--userdir", userdir)
        assert result.code == 2 and "is damaged" in result.err, (command, result.err)
        assert "Traceback" not in result.err
