"""The Freqtrade process a backtest runs in, started before the backtest is known."""

from __future__ import annotations

import io
import os
import sys

import pytest

from strategies.freqtrade_process import OFFLINE_FREQTRADE, REPO_ROOT, WAIT, StartedFreqtrade
from tests.conftest import run_in_own_group

WAITING = [*OFFLINE_FREQTRADE, WAIT]


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_started_freqtrade_that_gets_no_backtest_leaves_no_process() -> None:
    """A cache hit or a refused backtest closes it unused: its whole group ends."""
    started = StartedFreqtrade(os.environ)
    try:
        assert _group_alive(started.pid)
    finally:
        started.close()
    assert not _group_alive(started.pid)


def test_it_runs_the_arguments_it_is_given_once() -> None:
    """The arguments reach the wrapper as if given on its command line (here an
    incomplete one: the wrapper's usage and exit 2), and only one run is allowed."""
    with StartedFreqtrade(os.environ) as started:
        completed = started.run(["--markets"])
        with pytest.raises(RuntimeError, match="one backtest"):
            started.run(["--markets"])
    assert completed.returncode == 2
    assert "usage: python -m strategies.freqtrade_offline" in completed.stderr


def test_stdin_closed_without_arguments_runs_nothing() -> None:
    shown = run_in_own_group(WAITING, cwd=REPO_ROOT, env=dict(os.environ), timeout=300)
    assert shown.returncode == 0, shown.stdout
    assert shown.stdout.strip() == ""


def test_arguments_that_are_not_a_list_of_strings_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from strategies import freqtrade_offline

    monkeypatch.setattr(sys, "stdin", io.StringIO('{"config": "c.json"}\n'))
    with pytest.raises(SystemExit, match="expected a JSON list of strings on stdin"):
        freqtrade_offline.main([WAIT])
