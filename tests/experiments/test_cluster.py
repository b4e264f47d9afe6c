"""The shared tracking stack (issue 27), as a team runs it, without Docker: a real
PostgreSQL (pgserver), a real ``mlflow server`` on it with proxied artefacts, and a
local Ray cluster of two workers. A whitelist and a scorecard trained through them give
the figures of the same work done here with the user dir's own store, to the last digit;
a client that knows only the server's URL backtests the champion; a worker killed in
the middle of a job is replaced, its run marked FAILED, nothing registered twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from common.context import RunContext
from common.executors import Executor, InProcess, RayCluster
from experiments.backtesting.run import backtest
from experiments.backtesting.scorecard import scorecard
from experiments.spec import ExperimentSpec, parse_experiment
from experiments.training import train_whitelist
from ml.model_uris import model_name
from ml.registry import promote
from ml.tracking import PID_TAG
from tests.conftest import import_synthetic, local_context

pytestmark = pytest.mark.slow

PAIRS = ("ETH/USDT", "XRP/USDT", "BNB/USDT", "SOL/USDT")
SCORED = ["ETH/USDT", "XRP/USDT"]
SPEC: dict[str, Any] = {
    "name": "wl_cluster",
    "seed": 5,
    "data": {"pairs": list(PAIRS), "timeframe": "1h", "timerange": "-20210301"},
    "backtest": {"strategy": "RegimeStrategy"},
    "regime": {"n_restarts": 1, "n_iter": 20},
    "model": {"kind": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 7}},
    "walk_forward": {"folds": 1, "test_size": 400},
}
CANDLES = 1600


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def tracking_server(postgres: Any, tmp_path: Path) -> Iterator[str]:
    """``mlflow server`` on its own PostgreSQL database, artefacts proxied (workers reach
    them only through the server); its whole process group ends after the test."""
    database = f"mlflow_{uuid.uuid4().hex[:8]}"
    postgres.psql(f"CREATE DATABASE {database};")
    backend = postgres.get_uri(database).replace("postgresql://", "postgresql+psycopg://")
    port = _free_port()
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend,
        "--serve-artifacts", "--artifacts-destination", str(tmp_path / "server_artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (tmp_path / "mlflow_server.log").open("w")
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "mlflow_server.log").read_text()
                assert time.monotonic() < deadline, "mlflow server did not answer in 180 s"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        log.close()


def _userdir(path: Path) -> Path:
    for seed, pair in enumerate(PAIRS, start=21):
        import_synthetic(path, pair, candles=CANDLES, seed=seed)
    return path


def _server_context(userdir: Path, url: str) -> RunContext:
    """A command started with MLFLOW_TRACKING_URI set: the server is its store."""
    return RunContext.resolve(userdir, {**os.environ, "MLFLOW_TRACKING_URI": url})


def _train_and_score(
    spec: ExperimentSpec, context: RunContext, executor: Executor
) -> dict[str, pd.DataFrame]:
    trained = train_whitelist(spec, context=context, executor=executor)
    card = scorecard(spec.for_pair(SCORED[0]), SCORED, context=context, executor=executor)
    return {
        "pairs": pd.DataFrame({pair: r.metrics for pair, r in trained.pairs.items()}),
        "scorecard": card.table(),
    }


def _champion_backtest(context: RunContext) -> dict[str, dict[str, float]]:
    client = MlflowClient(context.tracking_uri)
    name = model_name(SPEC["name"], SCORED[0])
    promote(client, name, 1, "cluster test", user="pytest", force=True)
    summary = backtest(
        strategy="RegimeStrategy",
        pair=SCORED[0],
        timeframe="1h",
        exchange="binance",
        timerange="",
        model=f"{name}@champion",
        context=context,
        walk_forward=True,
    )
    return summary.comparison


def test_the_cluster_gives_the_local_figures_and_a_client_needs_only_the_url(
    tracking_server: str, tmp_path: Path
) -> None:
    pytest.importorskip("ray", reason="Ray is the optional extra .[ray]: not installed here")
    spec = parse_experiment(SPEC, source="test")
    local = local_context(_userdir(tmp_path / "local"))
    expected = _train_and_score(spec, local, InProcess())
    expected_backtest = _champion_backtest(local)

    cluster_dir = _userdir(tmp_path / "cluster")
    with RayCluster(workers=2) as cluster:
        got = _train_and_score(spec, _server_context(cluster_dir, tracking_server), cluster)
    for key, frame in expected.items():
        pd.testing.assert_frame_equal(got[key], frame, check_exact=True)
    # everything went to the server: nothing of MLflow in the user dir the workers used
    assert not (cluster_dir / "mlflow.db").exists() and not (cluster_dir / "mlartifacts").exists()

    # a client with the candles and the server's URL only: promotes and backtests
    client_dir = _userdir(tmp_path / "client")
    got_backtest = _champion_backtest(_server_context(client_dir, tracking_server))
    assert pd.DataFrame(got_backtest).equals(pd.DataFrame(expected_backtest))
    assert not (client_dir / "mlflow.db").exists()


def _kill_first_running_worker(url: str, experiment: str, killed: list[int]) -> None:
    """Kill (SIGKILL) the process of the first pair run seen RUNNING: a worker lost."""
    client = MlflowClient(url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not killed:
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            running = client.search_runs(
                [found.experiment_id],
                filter_string="attributes.status = 'RUNNING' and tags.pair != ''",
            )
            for run in running:
                pid = int(run.data.tags.get(PID_TAG, "0"))
                if pid and pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
        time.sleep(0.1)


def test_a_worker_killed_mid_job_is_replaced_and_nothing_is_registered_twice(
    tracking_server: str, tmp_path: Path
) -> None:
    pytest.importorskip("ray", reason="Ray is the optional extra .[ray]: not installed here")
    spec = parse_experiment(SPEC, source="test")
    context = _server_context(_userdir(tmp_path / "cluster"), tracking_server)
    killed: list[int] = []
    killer = threading.Thread(
        target=_kill_first_running_worker, args=(tracking_server, SPEC["name"], killed)
    )
    killer.start()
    try:
        with RayCluster(workers=2) as cluster:
            result = train_whitelist(spec, context=context, executor=cluster)
    finally:
        killer.join()
    assert killed, "no worker was seen running a pair"
    assert set(result.pairs) == set(PAIRS)
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name(SPEC["name"])
    runs = client.search_runs([experiment.experiment_id])
    dead = [r for r in runs if r.data.tags.get(PID_TAG) == str(killed[0])]
    assert dead and all(r.info.status == "FAILED" for r in dead)
    # by whichever came first: another job's stale-process rule (this machine) or the
    # retry's own lost-attempt rule (any machine: tests/ml/test_tracking.py)
    assert {r.data.tags.get("tradingbot.failure") for r in dead} <= {
        "its process died while running",
        "an earlier attempt of its job was lost",
    }
    for pair in PAIRS:  # one version per pair: the killed job registered nothing
        versions = client.search_model_versions(f"name = '{model_name(SPEC['name'], pair)}'")
        assert len(versions) == 1, pair
        assert client.get_run(versions[0].run_id).info.status == "FINISHED"
