"""The Freqtrade process a backtest runs in, started before the backtest is known.

Two ways to start it, one interface (:class:`FreqtradeProcess`):

- :class:`StartedFreqtrade`: ``python -m strategies.freqtrade_offline --wait``, a fresh
  interpreter that imports Freqtrade and our strategy modules (2-3 s), then reads its
  arguments from stdin. A command starts it first thing (before its own imports), so
  both import side by side, and hands it the backtest when the config is written
  (:func:`strategies.runner.run_backtest`, which otherwise starts one itself).
- :class:`ForkedFreqtrade`: forked from a process pool's fork server
  (:meth:`common.executors.ProcessPool.start_process`), which has already imported
  pandas, NumPy, MLflow and our packages for the pool's workers: it imports only
  Freqtrade's own modules (about half of the fresh interpreter's imports), and not at
  the command's start, where the fork server and the command import on the two cores.
  ``tradingbot train --jobs N --backtest`` uses it.

Only the standard library here, so that starting either costs the command nothing.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Protocol

REPO_ROOT = Path(__file__).resolve().parents[1]  # where ``-m strategies...`` imports from
OFFLINE_FREQTRADE = (sys.executable, "-m", "strategies.freqtrade_offline")
WAIT = "--wait"  # the wrapper's option: import first, then read the arguments from stdin


# Freqtrade merges every variable with this prefix into its config
FREQTRADE_ENVIRONMENT = "FREQTRADE__"


def backtest_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The environment of the Freqtrade subprocess: this one without ``FREQTRADE__*``
    (Freqtrade would merge a running bot's settings into the backtest's config: results
    outside the cache key, keys where none belong, a telegram token alone breaks the
    config) and without ``PYTEST_VERSION`` (Freqtrade then skips its logging set-up, and
    so our log file)."""
    return {
        name: value
        for name, value in environment.items()
        if name != "PYTEST_VERSION" and not name.startswith(FREQTRADE_ENVIRONMENT)
    }


class FreqtradeProcess(Protocol):
    """A Freqtrade process started before its backtest is known: :meth:`run` gives it
    the wrapper's arguments once and waits for its end; :meth:`close` ends its whole
    process group unless it ran to its end (a cached or refused backtest)."""

    @property
    def pid(self) -> int: ...

    def run(self, arguments: list[str]) -> subprocess.CompletedProcess[str]: ...

    def close(self) -> None: ...

    def __enter__(self) -> FreqtradeProcess: ...

    def __exit__(self, *exc: object) -> None: ...


class StartedFreqtrade:
    """A Freqtrade process started before its backtest is known
    (``strategies.freqtrade_offline --wait``): it imports Freqtrade and our strategy
    modules (2-3 s) while this process resolves the model, reads the candles and writes
    the config, then runs the arguments :meth:`run` gives it. Its own process group,
    ended by :meth:`close` (or leaving the ``with`` block) unless it ran to its end: a
    backtest answered from the cache, or one that failed before it ran, leaves nothing
    behind."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        self._process = subprocess.Popen(
            [*OFFLINE_FREQTRADE, WAIT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=backtest_environment(environment),
            start_new_session=True,
        )
        self.used = False

    @property
    def pid(self) -> int:
        """The process's id, which is also its process group's."""
        return self._process.pid

    def run(self, arguments: list[str]) -> subprocess.CompletedProcess[str]:
        """Run ``strategies.freqtrade_offline`` with ``arguments``, once, to its end."""
        if self.used:
            raise RuntimeError("a started Freqtrade runs one backtest")
        self.used = True
        stdout, stderr = self._process.communicate(json.dumps(arguments) + "\n")
        return subprocess.CompletedProcess(
            self._process.args, self._process.returncode, stdout, stderr
        )

    def close(self) -> None:
        """End the process's whole group unless it ran to its end."""
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.communicate()

    def __enter__(self) -> StartedFreqtrade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# how a pool starts a process from its fork server: target and arguments in, started
# process out (``ProcessPool.start_process``)
ProcessStarter = Callable[[Callable[..., object], tuple[object, ...]], BaseProcess]


class ForkedFreqtrade:
    """A Freqtrade process forked from a process pool's fork server by ``start``
    (:meth:`common.executors.ProcessPool.start_process`): the wrapper's
    :func:`strategies.freqtrade_offline.run_forked` imports Freqtrade's modules and waits
    for its arguments on a pipe. ``start`` is called on a thread of its own, since it
    waits for the fork server to finish its imports: the command goes on meanwhile.

    The same contract as :class:`StartedFreqtrade`: the environment less what
    :func:`backtest_environment` leaves out, the repository as working folder, its own
    process group (ended by :meth:`close` unless it ran to its end), its standard output
    and error returned by :meth:`run` (through files: the fork server's own are the
    command's)."""

    def __init__(self, environment: Mapping[str, str], start: ProcessStarter) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="tradingbot-freqtrade-"))
        self._output = (self._folder / "stdout", self._folder / "stderr")
        receiving, self._sending = multiprocessing.Pipe(duplex=False)
        self._process: BaseProcess | None = None
        self._failure: BaseException | None = None
        self.used = False
        arguments = (
            receiving,
            backtest_environment(environment),
            str(REPO_ROOT),
            *(str(path) for path in self._output),
        )

        def fork() -> None:
            from strategies.freqtrade_offline import run_forked

            try:
                self._process = start(run_forked, arguments)
            except BaseException as failure:  # raised where the process is wanted
                self._failure = failure
            finally:
                receiving.close()  # the child holds its own end now

        self._forking = threading.Thread(target=fork, name="fork-freqtrade", daemon=True)
        self._forking.start()

    def _started(self) -> BaseProcess:
        self._forking.join()
        if self._failure is not None:
            raise RuntimeError(f"could not start Freqtrade's process: {self._failure}")
        assert self._process is not None
        return self._process

    @property
    def pid(self) -> int:
        """The process's id, which is also its process group's once it has made that
        group (its first step after the fork)."""
        pid = self._started().pid
        assert pid is not None
        return pid

    def run(self, arguments: list[str]) -> subprocess.CompletedProcess[str]:
        """Run ``strategies.freqtrade_offline`` with ``arguments``, once, to its end."""
        if self.used:
            raise RuntimeError("a started Freqtrade runs one backtest")
        self.used = True
        process = self._started()
        # one that ended before it was given them (a broken import) says why in its output
        with contextlib.suppress(OSError):
            self._sending.send(arguments)
        self._sending.close()
        process.join()
        assert process.exitcode is not None  # joined
        stdout, stderr = (
            path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
            for path in self._output
        )
        return subprocess.CompletedProcess(
            [*OFFLINE_FREQTRADE, *arguments], process.exitcode, stdout, stderr
        )

    def close(self) -> None:
        """End the process's whole group unless it ran to its end."""
        self._sending.close()  # a process still waiting for its arguments then ends too
        try:
            process = self._started()
        except RuntimeError:
            process = None
        try:
            if process is not None and process.pid is not None and process.is_alive():
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:  # killed before it made its own group
                    process.kill()
                process.join()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> ForkedFreqtrade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
