"""MLflow tracking set-up (ml/tracking.py): the store under the user dir, damaged stores
refused before MLflow touches them, and flat parameters."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from common.layout import UserDir
from ml.tracking import (
    StoreError,
    check_sqlite_store,
    configure,
    default_tracking_uri,
    experiment_id,
    flatten,
    sqlite_store_path,
)


def test_the_default_store_is_sqlite_in_the_user_dir(tmp_path: Path) -> None:
    uri = default_tracking_uri(tmp_path / "ud")
    assert uri == f"sqlite:///{(tmp_path / 'ud' / 'mlflow.db').resolve()}"
    assert sqlite_store_path(uri) == (tmp_path / "ud" / "mlflow.db").resolve()
    assert sqlite_store_path("http://mlflow:5000") is None


def test_experiments_open_in_the_model_training_view(tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    first = experiment_id(client, "spec_a", UserDir(userdir))
    assert experiment_id(client, "spec_a", UserDir(userdir)) == first  # found, not created again
    tags = client.get_experiment(first).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"hello world, not sqlite", "is not an SQLite database")],
)
def test_a_damaged_store_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    store = tmp_path / "mlflow.db"
    store.write_bytes(content)
    with pytest.raises(StoreError, match=message) as refused:
        check_sqlite_store(store)
    assert "tradingbot restore" in str(refused.value)


def test_a_truncated_store_is_refused_and_a_whole_one_accepted(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE t (x TEXT)")
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 400)
    db.close()
    check_sqlite_store(store)  # whole: no error
    check_sqlite_store(tmp_path / "absent.db")  # absent: MLflow creates it
    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 3])
    with pytest.raises(StoreError, match="damaged"):
        check_sqlite_store(store)


def test_a_store_found_whole_is_read_again_only_once_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "mlflow.db"
    with contextlib.closing(sqlite3.connect(store)) as db, db:
        db.execute("CREATE TABLE t (x TEXT)")
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 400)
    reads: list[object] = []
    connect = sqlite3.connect

    def counted(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        reads.append(args[0])
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counted)
    check_sqlite_store(store)
    check_sqlite_store(store)
    assert len(reads) == 1  # unchanged: not read a second time
    data = bytearray(store.read_bytes())
    data[-3000:-2000] = b"\xff" * 1000  # same size, new content and modification time
    store.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged"):
        check_sqlite_store(store)
    assert len(reads) == 2


def test_nested_config_becomes_flat_parameters() -> None:
    flat = flatten(
        {"model": {"kind": "lightgbm", "params": {"num_leaves": 7}}, "pairs": ["A", "B"]}
    )
    assert flat == {"model.kind": "lightgbm", "model.params.num_leaves": "7", "pairs": '["A", "B"]'}


def test_one_lineage_for_every_kind_of_run() -> None:
    import pandas as pd

    from features.candles import data_window
    from features.data.synthetic import generate
    from ml.tracking import lineage

    candles, _ = generate(100, seed=1)
    window = data_window(candles, "BTC/USDT", "1h")
    tags = lineage(window, spec_hash="abc", seed=3, model_kind="lightgbm")
    assert tags["data_sha256"] == window.sha256 and tags["pair"] == "BTC/USDT"
    assert tags["data.rows"] == "100" and tags["seed"] == "3" and tags["spec_hash"] == "abc"
    assert pd.Timestamp(tags["data.first"]) == window.first
    assert {"git_commit", "tradingbot.pid", "tradingbot.host"} <= set(tags)
    assert "feature_spec_hash" not in tags  # only what the run has
    assert set(lineage()) == {"git_commit", "tradingbot.pid", "tradingbot.host"}


def test_an_unreachable_tracking_server_is_one_clear_error_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    """Before: MLflow's client retried for four minutes, then printed a traceback."""
    from ml.tracking import StoreError, configure

    userdir = tmp_path / "ud"
    with pytest.raises(StoreError, match=r"server http://127\.0\.0\.1:9 is not reachable"):
        configure("http://127.0.0.1:9", UserDir(userdir))
    assert not userdir.exists()


def test_a_server_that_answers_at_all_is_reachable(tmp_path: Path) -> None:
    """Any HTTP answer counts: a server behind a login still answers /health with 401."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ml.tracking import require_reachable_server

    seen: list[str] = []

    class LoginWall(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), LoginWall)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for _ in range(2):  # asked once a process: a command configures the store often
            require_reachable_server(f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/health"]


def test_a_retried_job_fails_its_lost_attempts_runs_wherever_they_ran(tmp_path: Path) -> None:
    """Issue 27: a worker lost on another machine leaves its runs RUNNING; the job's
    retry marks them (and their fold runs) FAILED, and touches no other job's runs."""
    from ml.tracking import HOST_TAG, PID_TAG, fail_lost_attempts

    client = configure(default_tracking_uri(tmp_path), UserDir(tmp_path))
    experiment = client.create_experiment("wl")
    parent = client.create_run(experiment).info.run_id
    elsewhere = {HOST_TAG: "another-machine", PID_TAG: "1234"}

    def child(of: str, **tags: str) -> str:
        tags = {"mlflow.parentRunId": of, **elsewhere, **tags}
        return str(client.create_run(experiment, tags=tags).info.run_id)

    lost = child(parent, pair="ETH/USDT")
    lost_fold = child(lost, fold="0")
    other_pair = child(parent, pair="XRP/USDT")
    other_parent = child(client.create_run(experiment).info.run_id, pair="ETH/USDT")
    finished = child(parent, pair="ETH/USDT")
    client.set_terminated(finished, status="FINISHED")

    failed = fail_lost_attempts(client, experiment, parent, {"pair": "ETH/USDT"})
    assert sorted(failed) == sorted([lost, lost_fold])
    status = {run: client.get_run(run).info.status for run in (lost, lost_fold)}
    assert set(status.values()) == {"FAILED"}
    for untouched in (other_pair, other_parent):
        assert client.get_run(untouched).info.status == "RUNNING"
    assert client.get_run(finished).info.status == "FINISHED"
    assert client.get_run(lost).data.tags["tradingbot.failure"] == (
        "an earlier attempt of its job was lost"
    )
