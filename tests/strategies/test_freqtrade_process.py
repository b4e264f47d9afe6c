"""The Freqtrade process a backtest runs in, started before the backtest is known: a
fresh interpreter (StartedFreqtrade) or a fork of a pool's fork server (ForkedFreqtrade)."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.executors import ProcessPool
from common.layout import UserDir
from strategies.freqtrade_process import (
    OFFLINE_FREQTRADE,
    REPO_ROOT,
    WAIT,
    ForkedFreqtrade,
    FreqtradeProcess,
    StartedFreqtrade,
)
from tests.conftest import FREQTRADE_TESTDATA, requires_shared, run_in_own_group

WAITING = [*OFFLINE_FREQTRADE, WAIT]


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _forked() -> FreqtradeProcess:
    # the pool's fork server is this process's (its preload: the first pool's)
    return ForkedFreqtrade(os.environ, ProcessPool(1).start_process)


def _started() -> FreqtradeProcess:
    return StartedFreqtrade(os.environ)


BOTH = pytest.mark.parametrize("make", [_started, _forked], ids=["fresh", "forked"])


@BOTH
def test_a_started_freqtrade_that_gets_no_backtest_leaves_no_process(
    make: Callable[[], FreqtradeProcess],
) -> None:
    """A cache hit or a refused backtest closes it unused: its whole group ends."""
    started = make()
    try:
        # a forked one makes its own group as its first step, just after the fork
        deadline = time.monotonic() + 60
        while not _group_alive(started.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _group_alive(started.pid)
    finally:
        started.close()
    assert not _group_alive(started.pid)


@BOTH
def test_it_runs_the_arguments_it_is_given_once(make: Callable[[], FreqtradeProcess]) -> None:
    """The arguments reach the wrapper as if given on its command line (here an
    incomplete one: the wrapper's usage and exit 2), and only one run is allowed."""
    with make() as started:
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


@pytest.fixture
def eth_userdir(tmp_path: Path) -> Iterator[UserDir]:
    from features.data import import_candles

    layout = UserDir(tmp_path / "ud")
    import_candles(
        FREQTRADE_TESTDATA / "ETH_BTC-5m.feather",
        pair="ETH/BTC",
        timeframe="5m",
        exchange="binance",
        layout=layout,
    )
    yield layout


@requires_shared
@pytest.mark.shared_data
def test_a_forked_freqtrade_backtests_as_a_fresh_interpreter_does(
    eth_userdir: UserDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same backtest, the same trades, whichever way its process started; and the
    forked one keeps Freqtrade's log and leaves out what a fresh one's environment does."""
    from strategies.results import parse_result_zip
    from strategies.runner import BacktestRequest, run_backtest

    # a running bot's setting that would break the config, were it merged into it
    monkeypatch.setenv("FREQTRADE__TELEGRAM__TOKEN", "not-for-backtests")
    request = BacktestRequest(
        strategy="TrendPullbackStrategy",
        pair="ETH/BTC",
        timeframe="5m",
        timerange="20180118-20180130",
    )
    results = []
    for make in (None, _forked):  # None: run_backtest starts a fresh one itself
        with contextlib.ExitStack() as stack:
            started = stack.enter_context(make()) if make is not None else None
            run = run_backtest(
                request, eth_userdir, environment=os.environ, use_cache=False, started=started
            )
        assert "Backtesting with data from" in run.log.read_text()
        results.append(parse_result_zip(run.result_zip, request.strategy))
    fresh, forked = results
    assert fresh.metrics.trades > 0
    assert forked.metrics == fresh.metrics
    assert forked.trades.equals(fresh.trades)


def _fails_at_start(
    _arguments: object, _environment: object, _folder: str, _stdout: str, stderr: str
) -> None:
    """A forked wrapper that ends before it reads its arguments (a broken install)."""
    Path(stderr).write_text("ImportError: no freqtrade here\n")
    os._exit(3)


def test_a_forked_freqtrade_that_ends_before_its_backtest_reports_its_exit_and_output() -> None:
    """run() then returns the process's exit code and standard error, which the backtest
    shows in its error, instead of failing on the pipe nobody reads."""
    pool = ProcessPool(1)
    started = ForkedFreqtrade(
        os.environ, lambda _target, args: pool.start_process(_fails_at_start, args)
    )
    with started:
        # it ends first, as a broken import would (the fork server, its parent, reaps it)
        deadline = time.monotonic() + 120
        while Path(f"/proc/{started.pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not Path(f"/proc/{started.pid}").exists()
        completed = started.run(["--markets", "snapshot.json"])
    assert completed.returncode == 3
    assert "no freqtrade here" in completed.stderr
