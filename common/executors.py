"""Where independent jobs run: in this process, in a local process pool, or on Ray.

A job is a plain, picklable value with a ``run()`` method and no hidden state (a
whitelist's pair, a scorecard's market, a walk-forward fold): it carries its own seed,
so its result is the same whichever executor runs it and on whichever worker. An
executor runs a list of jobs and returns their results in the jobs' order; the first
failure cancels the jobs not started yet and is raised as the job raised it.

- :class:`InProcess`: one after another, here (``--jobs 1``, the default).
- :class:`ProcessPool`: ``workers`` processes on this machine (``--jobs N``), forked from
  a clean fork server that has imported what the jobs need once.
- :class:`RayCluster`: tasks on a Ray cluster (``--executor ray``, or ``RAY_ADDRESS``
  set, or ``[compute] executor = "ray"`` in a spec); a local one when no address is
  given. Ray retries a job whose worker died (``max_retries``) on another worker. Ray
  is an optional extra (``pip install .[ray]``); nothing imports it unless asked.

``threads`` is each job's share of the CPU threads: a job limits its own BLAS, OpenMP
and torch threads to it (see :func:`limit_threads`), so that jobs running side by side
do not oversubscribe the cores.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from common.errors import TradingbotError

ExecutorName = Literal["local", "ray"]
EXECUTOR_NAMES: tuple[ExecutorName, ...] = ("local", "ray")
# Ray's own variable: the address of a running cluster ("auto", "ray://head:10001")
RAY_ADDRESS_VARIABLE = "RAY_ADDRESS"
# a job whose worker died (killed, out of memory, machine lost) is run again elsewhere
RAY_MAX_RETRIES = 3

R = TypeVar("R", covariant=True)
T = TypeVar("T")


class Job(Protocol[R]):
    """A picklable unit of work; ``run`` is called once, in whichever process runs it."""

    def run(self) -> R: ...


class ComputeError(TradingbotError):
    """An executor that cannot start: Ray not installed, a cluster that is not there."""


def limit_threads(threads: int, *, torch: bool = False) -> None:
    """Limit this process's numerical libraries to ``threads`` (a job's share)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)  # BLAS/OpenMP of numpy, scikit-learn and LightGBM
    if torch:
        import torch as _torch

        _torch.set_num_threads(threads)


class Executor(ABC):
    """Runs independent jobs; see the module doc."""

    name: str = ""
    workers: int = 1
    # jobs run in other processes: a callback they carry does not reach back here
    remote: bool = True

    @property
    def threads(self) -> int:
        """The CPU threads each job of this executor may use at once."""
        return max(1, (os.cpu_count() or 1) // self.workers)

    @abstractmethod
    def run_all(
        self, jobs: Sequence[Job[T]], *, on_done: Callable[[int, T], None] | None = None
    ) -> list[T]:
        """Every job's result, in the order of ``jobs``. ``on_done(index, result)`` is
        called as each finishes (in the order they finish)."""

    def warm(self) -> None:  # noqa: B027 (most executors have nothing to start early)
        """Start what this executor's first jobs would wait for (a pool's fork server),
        so that it gets ready while this process does its own set-up."""

    def close(self) -> None:  # noqa: B027 (most executors hold nothing to release)
        """Release the workers (a pool's processes, a Ray connection this opened)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run(job: Job[T]) -> T:
    return job.run()


class InProcess(Executor):
    """Jobs one after another in this process."""

    name = "in-process"
    remote = False

    def run_all(
        self, jobs: Sequence[Job[T]], *, on_done: Callable[[int, T], None] | None = None
    ) -> list[T]:
        results = []
        for index, job in enumerate(jobs):
            results.append(job.run())
            if on_done is not None:
                on_done(index, results[-1])
        return results


def _pool_context(preload: Sequence[str]) -> Any:
    """Workers forked from a fork server where the platform has one (Linux, macOS),
    else spawned. The fork server is a fresh interpreter, started once per process, that
    imports the modules ``preload`` names and then only forks: a worker shares none of
    this process's state, as with spawning, but starts in milliseconds with those modules
    ready instead of importing them again (measured in docs/BACKTESTING.md). Being one
    per process, the server keeps the preload of the pool that started it."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))  # read only when the server starts
    return context


def _adopt(environment: dict[str, str], directory: str) -> None:
    """A worker's start: the environment and working folder of the process that made
    the pool now, not those the fork server was started with."""
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(directory)


class ProcessPool(Executor):
    """Jobs in ``workers`` processes on this machine, each sharing nothing with this
    process but what its job carries and this process's environment (see
    :func:`_pool_context`). ``preload``: the modules every worker starts with, imported
    once for all of them (the caller knows what its jobs need: the CLI names
    :mod:`experiments.preload`)."""

    name = "local"

    def __init__(self, workers: int, preload: Sequence[str] = ()) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.preload = tuple(preload)

    def warm(self) -> None:
        """Start the fork server now: its imports (seconds) then run while this process
        imports and reads what it needs, instead of after."""
        if _pool_context(self.preload).get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()  # returns at once; the server imports on its own

    def start_process(self, target: Callable[..., object], args: tuple[object, ...]) -> BaseProcess:
        """A process of its own running ``target(*args)``, made as a worker is: forked
        from the fork server, with the modules it preloaded (a command's Freqtrade
        process: :class:`strategies.freqtrade_process.ForkedFreqtrade`). It shares
        nothing else with this process; ``target`` adopts what it needs of it. Waits
        for the fork server to finish its imports. Returns the started
        ``multiprocessing`` process, which the caller joins or ends."""
        process: BaseProcess = _pool_context(self.preload).Process(target=target, args=args)
        process.start()
        return process

    def run_all(
        self, jobs: Sequence[Job[T]], *, on_done: Callable[[int, T], None] | None = None
    ) -> list[T]:
        from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

        if not jobs:
            return []
        results: dict[int, T] = {}
        with ProcessPoolExecutor(
            min(self.workers, len(jobs)),
            mp_context=_pool_context(self.preload),
            initializer=_adopt,
            initargs=(dict(os.environ), str(Path.cwd())),
        ) as pool:
            futures: dict[Future[T], int] = {
                pool.submit(_run, job): index for index, job in enumerate(jobs)
            }
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        index = futures[future]
                        results[index] = future.result()  # raises the job's error
                        if on_done is not None:
                            on_done(index, results[index])
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return [results[index] for index in range(len(jobs))]


class RayCluster(Executor):
    """Jobs as Ray tasks. ``address``: a running cluster (``"auto"``, ``ray://...``);
    ``None`` starts a local one with ``workers`` CPUs for this process's lifetime.
    ``gpu_jobs``: the jobs ask for one GPU each (LSTM, HMM-LSTM) where the cluster has
    any; CPU jobs ask for ``threads`` CPUs."""

    name = "ray"

    def __init__(
        self, address: str | None = None, workers: int | None = None, *, gpu_jobs: bool = False
    ) -> None:
        try:
            ray: Any = importlib.import_module("ray")
        except ImportError as exc:
            raise ComputeError(
                "the ray executor needs Ray, which is not installed",
                hint="pip install '.[ray]' (or drop --executor ray / RAY_ADDRESS)",
            ) from exc
        self._ray = ray
        self._started = False
        self.address = address  # None: a local cluster of this process
        if not ray.is_initialized():
            if address is not None:
                require_reachable_cluster(address)
            try:
                ray.init(
                    address=address,
                    num_cpus=workers if address is None else None,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError) as exc:
                raise ComputeError(
                    f"cannot reach the Ray cluster at {address}: {exc}",
                    hint="start it (ray start --head) or unset RAY_ADDRESS",
                ) from exc
            self._started = True
        resources = ray.cluster_resources()
        self.cpus = int(resources.get("CPU", 1))
        self.gpus = int(resources.get("GPU", 0))
        self.workers = max(1, workers or self.cpus)
        self.gpu_jobs = gpu_jobs and self.gpus > 0

    @property
    def threads(self) -> int:
        return max(1, self.cpus // self.workers)

    def run_all(
        self, jobs: Sequence[Job[T]], *, on_done: Callable[[int, T], None] | None = None
    ) -> list[T]:
        ray = self._ray
        options: dict[str, Any] = {"max_retries": RAY_MAX_RETRIES, "num_cpus": self.threads}
        if self.gpu_jobs:
            options["num_gpus"] = 1
        remote = ray.remote(_run).options(**options)
        refs = [remote.remote(job) for job in jobs]
        index_of = {ref: index for index, ref in enumerate(refs)}
        results: dict[int, T] = {}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    index = index_of[ref]
                    results[index] = _unwrapped(ray, ref)
                    if on_done is not None:
                        on_done(index, results[index])
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        return [results[index] for index in range(len(jobs))]

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def _unwrapped(ray: Any, ref: Any) -> Any:
    """The task's result; a task's own exception is raised as itself, not wrapped."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        original = getattr(exc, "cause", None)
        raise (original if isinstance(original, BaseException) else cause) from None


def require_reachable_cluster(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, naming it, when a cluster's ``host:port`` (``ray://host:port``)
    does not answer: Ray itself retries an unreachable address for minutes. ``auto``
    (the cluster started on this machine) is Ray's to find; it fails at once."""
    import socket

    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ComputeError(
            f"cannot reach the Ray cluster at {address}: {exc}",
            hint="start it (ray start --head), check the address, or unset RAY_ADDRESS",
        ) from exc


def stop_fork_server() -> None:
    """End the fork server this process started (:meth:`ProcessPool.warm`, or a pool's
    first jobs), if it did, and wait for its end: for a command about to end. A server
    still importing (the command failed before its pool ran) would otherwise outlive the
    command by seconds with the command's output streams open, and a caller reading them
    through a pipe would wait for it. multiprocessing keeps the server's pid privately:
    it is read defensively, and nothing is done where it is not there."""
    forkserver = sys.modules.get("multiprocessing.forkserver")
    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if not isinstance(pid, int):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # not ours to wait for (already reaped)
        os.waitpid(pid, 0)


def executor_for(
    name: ExecutorName | None,
    jobs: int,
    environment: Mapping[str, str],
    *,
    spec_executor: ExecutorName | None = None,
    gpu_jobs: bool = False,
    preload: Sequence[str] = (),
) -> Executor:
    """The executor a command asked for: ``name`` (``--executor``) wins, then the
    spec's ``[compute] executor``, then ``RAY_ADDRESS`` in ``environment`` (ray);
    otherwise local: a process pool of ``jobs`` workers (starting with the modules
    ``preload`` names), in-process for one."""
    if chosen_executor(name, environment, spec_executor) == "ray":
        address = environment.get(RAY_ADDRESS_VARIABLE) or None
        return RayCluster(address, workers=jobs if jobs > 1 else None, gpu_jobs=gpu_jobs)
    return ProcessPool(jobs, preload) if jobs > 1 else InProcess()


def chosen_executor(
    name: str | None, environment: Mapping[str, str], spec_executor: str | None = None
) -> str:
    """Which executor a command gets: ``name`` (``--executor``), then the spec's
    ``[compute] executor``, then ray when ``RAY_ADDRESS`` is set, else local."""
    chosen = name or spec_executor
    if chosen is None and environment.get(RAY_ADDRESS_VARIABLE):
        return "ray"
    return chosen or "local"
