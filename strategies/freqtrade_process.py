"""The Freqtrade process a backtest runs in, started before the backtest is known.

``python -m strategies.freqtrade_offline --wait`` imports Freqtrade and our strategy
modules (2-3 s), then reads its arguments from stdin: a command starts it first thing
(before its own imports), so both import side by side, and hands it the backtest when
the config is written (:func:`strategies.runner.run_backtest`, which otherwise starts
one itself when it runs Freqtrade). Only the standard
library here, so that starting it costs the command nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

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
