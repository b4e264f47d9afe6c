"""Executors (issue 27): the same results, in the jobs' order, whichever runs them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from common.executors import (
    ComputeError,
    InProcess,
    ProcessPool,
    RayCluster,
    executor_for,
)


@dataclass(frozen=True)
class Draw:
    """A seeded job: its result depends on its own seed only, not on the worker."""

    seed: int
    size: int = 1000

    def run(self) -> tuple[float, int]:
        return float(np.random.default_rng(self.seed).normal(size=self.size).sum()), os.getpid()


@dataclass(frozen=True)
class Fails:
    message: str

    def run(self) -> int:
        raise ValueError(self.message)


@dataclass(frozen=True)
class Surroundings:
    """What a worker sees of the process that made its pool."""

    variable: str

    def run(self) -> tuple[str | None, str, bool]:
        import sys

        return os.environ.get(self.variable), str(Path.cwd()), "sklearn" in sys.modules


JOBS = [Draw(seed) for seed in (7, 3, 11, 5)]
# what the pools' workers start with (one fork server per process: the first pool decides;
# the CLI's list, experiments.preload, imports scikit-learn too)
PRELOAD = ("sklearn",)
EXPECTED = [job.run()[0] for job in JOBS]


def test_in_process_runs_in_order_here() -> None:
    seen: list[int] = []
    results = InProcess().run_all(JOBS, on_done=lambda index, _result: seen.append(index))
    assert [value for value, _pid in results] == EXPECTED
    assert {pid for _value, pid in results} == {os.getpid()}
    assert seen == [0, 1, 2, 3]


def test_a_process_pool_gives_the_same_results_in_the_jobs_order_from_other_processes() -> None:
    seen: list[int] = []
    with ProcessPool(2, PRELOAD) as pool:
        results = pool.run_all(JOBS, on_done=lambda index, _result: seen.append(index))
    assert [value for value, _pid in results] == EXPECTED  # to the last digit
    assert os.getpid() not in {pid for _value, pid in results}
    assert sorted(seen) == [0, 1, 2, 3]


def test_a_pool_worker_has_this_process_environment_and_folder_of_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fork server lives as long as this process and forks every pool's workers: a
    variable set or a folder entered after it started still reaches the jobs."""
    with ProcessPool(2, PRELOAD) as pool:
        pool.run_all([Draw(1), Draw(2)])  # the fork server runs from here on
    monkeypatch.setenv("TRADINGBOT_EXECUTOR_PROBE", "set later")
    monkeypatch.chdir(tmp_path)
    with ProcessPool(2, PRELOAD) as pool:
        seen = pool.run_all([Surroundings("TRADINGBOT_EXECUTOR_PROBE")] * 2)
    assert seen == [("set later", str(tmp_path), True)] * 2  # and the libraries preloaded


def test_a_warmed_pool_gives_the_same_results() -> None:
    """``warm`` starts the fork server early (the CLI does, before its own imports); the
    jobs then run as without it, in other processes, with the libraries preloaded."""
    InProcess().warm()  # nothing to start
    with ProcessPool(2, PRELOAD) as pool:
        pool.warm()
        pool.warm()  # a second call finds it running
        results = pool.run_all(JOBS)
        seen = pool.run_all([Surroundings("HOME")])
    assert [value for value, _pid in results] == EXPECTED
    assert os.getpid() not in {pid for _value, pid in results}
    assert seen[0][2]


def test_a_failing_job_raises_its_own_error() -> None:
    with pytest.raises(ValueError, match="pair 2 broke"), ProcessPool(2, PRELOAD) as pool:
        pool.run_all([Draw(1), Fails("pair 2 broke"), Draw(2)])
    with pytest.raises(ValueError, match="pair 2 broke"):
        InProcess().run_all([Draw(1), Fails("pair 2 broke")])


def test_the_executor_asked_for_wins_then_the_spec_then_ray_address() -> None:
    assert isinstance(executor_for(None, 1, {}), InProcess)
    pool = executor_for(None, 3, {})
    assert isinstance(pool, ProcessPool) and pool.workers == 3
    assert isinstance(executor_for("local", 2, {"RAY_ADDRESS": "auto"}), ProcessPool)
    assert isinstance(executor_for(None, 1, {"RAY_ADDRESS": ""}), InProcess)
    # a spec's [compute] executor = "local" wins over the environment's RAY_ADDRESS
    assert isinstance(
        executor_for(None, 1, {"RAY_ADDRESS": "auto"}, spec_executor="local"), InProcess
    )


def test_ray_asked_for_but_unreachable_is_one_clear_error() -> None:
    pytest.importorskip("ray", reason="Ray is the optional extra .[ray]: not installed here")
    with pytest.raises(ComputeError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1"):
        executor_for(None, 1, {"RAY_ADDRESS": "127.0.0.1:1"})


@pytest.mark.slow
def test_a_local_ray_cluster_gives_the_results_of_the_process_pool() -> None:
    pytest.importorskip("ray", reason="Ray is the optional extra .[ray]: not installed here")
    with RayCluster(workers=2) as cluster:
        assert cluster.workers == 2 and cluster.threads == 1
        results = cluster.run_all(JOBS)
        with pytest.raises(ValueError, match="pair 2 broke"):
            cluster.run_all([Draw(1), Fails("pair 2 broke")])
    assert [value for value, _pid in results] == EXPECTED
    assert os.getpid() not in {pid for _value, pid in results}


def test_the_cli_workers_start_with_the_pipeline_and_mlflow_package_map() -> None:
    """``experiments.preload`` (what the CLI's pool workers start with) leaves a fresh
    interpreter with the training modules imported and MLflow's installed-package map
    built: if MLflow renamed the private helper that builds it, every worker would pay
    for it again in its first job, unnoticed but for this test."""
    from tests.conftest import run_python

    probe = (
        "import sys, experiments.preload\n"
        "from mlflow.utils import requirements_utils as r\n"
        "print('experiments.training.whitelist' in sys.modules, 'lightgbm' in sys.modules,"
        " 'numba' in sys.modules, r._MODULES_TO_PACKAGES is not None,"
        " 'sqlalchemy.dialects.sqlite' in sys.modules, 'git' in sys.modules)\n"
    )
    shown = run_python(probe)
    assert shown.returncode == 0, shown.stdout
    assert shown.stdout.split()[-6:] == ["True"] * 6
