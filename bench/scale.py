"""Benchmark: the 10-pair whitelist of bench/pairs.py on Ray, one worker against two.

Measured here, in one run, on this machine:

* the whitelist (10 pairs, one walk-forward LightGBM + regime model per pair, lean MLflow
  records, registration) trained on a local Ray cluster of 1 worker, then of 2 workers
  (each job single-threaded, so the workers do not share a core's threads): the
  speed-up (goal: >= 1.7x). Each run trains into a fresh user dir whose tracking store
  is created first, outside the time (one process creates it, whatever the workers:
  about 2 s); the ratio with that creation inside the time, as measured until session
  16, is printed too;
* Ray's per-job overhead against the local process pool: the same 10 jobs that do
  nothing but load their pair's candles, through each executor, per job; and as a share
  of a pair's job (goal: < 5%);
* what a pair's job costs the tracking store: MLflow rows (runs, params, tags, metrics)
  and artefact bytes per pair, and the peak memory of a worker;
* with ``--server``: what one ``mlflow server`` on PostgreSQL (pgserver) absorbs, in
  pair-sized runs per second from 2 clients at once: where it becomes the bottleneck.

docs/BACKTESTING.md ("Scaling out") turns these into a model of 1,000 pairs x 4
timeframes on N machines.

    .venv/bin/python bench/scale.py [--server]
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from bench.backtest_vs_freqai import import_test_candles, lightgbm_spec  # noqa: E402
from bench.pairs import DATA, PAIRS  # noqa: E402
from common.context import RunContext  # noqa: E402
from common.executors import Executor, InProcess, ProcessPool, RayCluster  # noqa: E402
from common.layout import UserDir  # noqa: E402
from experiments.training import train_whitelist  # noqa: E402
from features.data import load_candles  # noqa: E402
from ml.tracking import configure, default_tracking_uri  # noqa: E402
from tradingbot._app import TRAINING_WORKER  # noqa: E402


@dataclass(frozen=True)
class LoadCandles:
    """A job that only reads its pair's candles: what any job does before its work."""

    userdir: Path
    pair: str

    def run(self) -> int:
        return len(load_candles(UserDir(self.userdir), "binance", self.pair, "5m"))


@dataclass(frozen=True)
class Warm:
    """A job that imports what a pair's training imports: a long-lived cluster's
    workers have done so before the jobs that are timed."""

    def run(self) -> int:
        import lightgbm  # noqa: F401
        import mlflow  # noqa: F401
        import sklearn.ensemble  # noqa: F401

        import experiments.training  # noqa: F401
        from ml import regime_memo

        regime_memo.clear()  # imports warm, regime fits not: the timed run fits them all
        return os.getpid()


@dataclass(frozen=True)
class PeakMemory:
    """A job that reports its worker's peak resident memory (MiB)."""

    def run(self) -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _userdir(path: Path) -> Path:
    return import_test_candles(path, PAIRS)


def _train(userdir: Path, executor: Executor) -> tuple[float, float]:
    """Seconds creating the fresh user dir's tracking store (once per user dir, in this
    process, whatever the workers), then training the whitelist into it."""
    spec = lightgbm_spec("bench_scale", {"pairs": list(PAIRS)})
    context = RunContext(userdir, default_tracking_uri(userdir), os.environ)
    began = time.perf_counter()
    configure(context.tracking_uri, UserDir(userdir))
    created = time.perf_counter() - began
    start = time.perf_counter()
    train_whitelist(spec, context=context, executor=executor)
    return created, time.perf_counter() - start


def _per_job(executor: Executor, userdir: Path, rounds: int = 3) -> float:
    """Seconds per job of 10 candle-loading jobs, the best of ``rounds`` (workers warm)."""
    jobs = [LoadCandles(userdir, pair) for pair in PAIRS]
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        executor.run_all(jobs)
        best = min(best, (time.perf_counter() - start) / len(jobs))
    return best


def _store_per_pair(userdir: Path) -> dict[str, float]:
    """MLflow rows and artefact bytes the whitelist left, per pair."""
    with sqlite3.connect(userdir / "mlflow.db") as db:
        rows = {
            table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("runs", "params", "tags", "metrics")
        }
    artefacts = sum(f.stat().st_size for f in (userdir / "mlartifacts").rglob("*") if f.is_file())
    per_pair = {f"{table} rows": count / len(PAIRS) for table, count in rows.items()}
    per_pair["artefact MiB"] = artefacts / len(PAIRS) / 2**20
    return per_pair


def _server_capacity(runs_per_client: int = 20, clients: int = 2) -> float:
    """Pair-sized runs (one run: params, tags, 60 metrics and 6 folds' 15 at their steps,
    the predictions and the fold windows as artefacts) per second that one mlflow server
    on PostgreSQL records from ``clients`` at once."""
    import signal
    import socket
    import subprocess
    import urllib.request
    from concurrent.futures import ProcessPoolExecutor

    import pgserver

    with tempfile.TemporaryDirectory() as tmp:
        postgres = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            postgres.psql("CREATE DATABASE mlflow;")
            backend = postgres.get_uri("mlflow").replace("postgresql://", "postgresql+psycopg://")
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            server = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
                 "--serve-artifacts", "--artifacts-destination", f"{tmp}/artifacts",
                 "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            try:
                for _ in range(360):
                    try:
                        urllib.request.urlopen(f"{url}/health", timeout=2).close()
                        break
                    except OSError:
                        time.sleep(0.5)
                start = time.perf_counter()
                with ProcessPoolExecutor(clients) as pool:
                    list(pool.map(_pair_sized_runs, [url] * clients, [runs_per_client] * clients))
                return clients * runs_per_client / (time.perf_counter() - start)
            finally:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        finally:
            postgres.cleanup()


def _pair_sized_runs(url: str, runs: int) -> None:
    import contextlib
    import io

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("capacity")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment(f"c{os.getpid()}")
    )
    now = int(time.time() * 1000)
    quiet = contextlib.redirect_stdout(io.StringIO())  # MLflow prints a link per run
    with quiet, tempfile.TemporaryDirectory() as tmp:
        artefact = Path(tmp) / "predictions.parquet"
        artefact.write_bytes(os.urandom(200_000))
        folds = Path(tmp) / "folds.json"
        folds.write_bytes(os.urandom(6_000))
        for index in range(runs):
            run = client.create_run(experiment_id, tags={"pair": f"P{index}"}).info.run_id
            figures = [Metric(f"overall.m{k}", float(k), now, 0) for k in range(60)]
            figures += [  # the folds, recorded in the run at their index as step
                Metric(f"fold.m{k}", float(k), now, fold) for fold in range(6) for k in range(15)
            ]
            client.log_batch(
                run,
                metrics=figures,
                params=[Param(f"p{k}", str(k)) for k in range(40)],
                tags=[RunTag(f"t{k}", str(k)) for k in range(15)],
            )
            client.log_artifact(run, str(artefact), "walk_forward")
            client.log_artifact(run, str(folds), "walk_forward")
            client.set_terminated(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", action="store_true", help="also measure an mlflow server")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"needs Freqtrade's test candles in {DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        userdir = _userdir(Path(tmp) / "candles")
        with ProcessPool(2, TRAINING_WORKER) as pool:
            pool_per_job = _per_job(pool, userdir)
            pool_memory = max(pool.run_all([PeakMemory(), PeakMemory()]))
        here_per_job = _per_job(InProcess(), userdir)
        walls: dict[int, float] = {}
        cold: dict[int, float] = {}
        creating: list[float] = []
        for workers in (1, 2):
            started = time.perf_counter()
            with RayCluster(workers=workers) as cluster:
                startup = time.perf_counter() - started
                ray_per_job = _per_job(cluster, userdir)
                created, cold[workers] = _train(_userdir(Path(tmp) / f"cold{workers}"), cluster)
                creating.append(created)
                # every worker warm: a Ray worker process serves task after task
                while len(set(cluster.run_all([Warm()] * 4 * workers))) < workers:
                    pass
                created, walls[workers] = _train(_userdir(Path(tmp) / f"ray{workers}"), cluster)
                creating.append(created)
                memory = max(cluster.run_all([PeakMemory()] * workers))
            print(f"Ray cluster of {workers}: started in {startup:.1f} s")
        store = _store_per_pair(Path(tmp) / "ray1")
    pair_job = walls[1] / len(PAIRS)
    print(
        f"data: {len(PAIRS)} pairs 5m, bench/pairs.py's spec (6 rolling folds); {os.cpu_count()} cores"
    )
    print(f"{'measure':<58}{'value':>10}")
    print(f"{'whitelist on 1 fresh Ray worker (its imports included), s':<58}{cold[1]:>10.1f}")
    print(f"{'whitelist on 2 fresh Ray workers, s':<58}{cold[2]:>10.1f}")
    print(f"{'speed-up, fresh workers, 2 / 1':<58}{cold[1] / cold[2]:>9.2f}x")
    print(f"{'whitelist on 1 warm Ray worker, s':<58}{walls[1]:>10.1f}")
    print(f"{'whitelist on 2 warm Ray workers, s':<58}{walls[2]:>10.1f}")
    print(f"{'speed-up, warm workers, 2 / 1 (goal >= 1.7x)':<58}{walls[1] / walls[2]:>9.2f}x")
    creation = sum(creating) / len(creating)
    print(f"{'creating a fresh user dir tracking store, s (mean of 4)':<58}{creation:>10.1f}")
    print(
        f"{'speed-up, warm workers, the store created in the time':<58}"
        f"{(walls[1] + creation) / (walls[2] + creation):>9.2f}x"
    )
    print(f"{'a pair job (1 worker), s':<58}{pair_job:>10.2f}")
    print(f"{'per job, in-process (candles only), ms':<58}{1000 * here_per_job:>10.1f}")
    # the pool starts its processes in each run_all: a whitelist pays that once
    print(f"{'per job, process pool of 2 (started per call), ms':<58}{1000 * pool_per_job:>10.1f}")
    print(f"{'per job, Ray (2 workers), ms':<58}{1000 * ray_per_job:>10.1f}")
    overhead = max(0.0, ray_per_job - here_per_job)
    print(
        f"{'Ray overhead per job, share of a pair job (goal < 5%)':<58}{overhead / pair_job:>9.2%}"
    )
    print(f"{'peak memory of a worker after its jobs, MiB (pool / Ray)':<58}"
          f"{pool_memory:>5.0f} / {memory:.0f}")  # fmt: skip
    for name, value in store.items():
        print(f"{'store per pair: ' + name:<58}{value:>10.2f}")
    if args.server:
        print(f"{'mlflow server on PostgreSQL, pair-sized runs/s (2 clients)':<58}"
              f"{_server_capacity():>10.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
