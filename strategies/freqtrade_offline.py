"""Run the real Freqtrade CLI with exchange markets from a frozen snapshot.

    python -m strategies.freqtrade_offline --markets SNAPSHOT.json backtesting -c config.json ...

Everything after the snapshot option goes to ``freqtrade`` unchanged. The only
change to Freqtrade is the coroutine ``Exchange._api_reload_markets``, which
normally downloads the markets: here it feeds the snapshot to ccxt through its
own ``set_markets`` and returns ``markets``, as the download would have.

    python -m strategies.freqtrade_offline --wait

imports Freqtrade and the modules our strategies use first, then reads the arguments
above from one line of stdin (a JSON list) and runs them: the caller starts it before it
knows the backtest (:class:`strategies.freqtrade_process.StartedFreqtrade`), so those
imports run while it resolves the model and writes the config. Stdin closed without a line: it
exits without running anything.

:func:`run_forked` does the same in a process forked from a pool's fork server
(:class:`strategies.freqtrade_process.ForkedFreqtrade`), the arguments coming on a pipe.
"""

from __future__ import annotations

import json
import os
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common.process_end import exit_without_teardown
from strategies.freqtrade_process import WAIT
from strategies.markets import load_snapshot


def install_frozen_markets(markets: dict[str, Any]) -> None:
    from freqtrade.exchange.exchange import Exchange

    async def _api_reload_markets(self: Any, reload: bool = False) -> Any:
        self._api_async.set_markets(markets)
        return self._api_async.markets

    Exchange._api_reload_markets = _api_reload_markets


# what a backtest of our strategies imports: Freqtrade's command, engine and reports,
# and the model adapter and strategy blocks the strategy files import
PRELOADED = (
    "freqtrade.main",
    "freqtrade.optimize.backtesting",
    "freqtrade.optimize.optimize_reports",
    "strategies.composed",
)


def _import_freqtrade() -> None:
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)


def _arguments_from_stdin() -> list[str] | None:
    _import_freqtrade()
    line = sys.stdin.readline()
    if not line.strip():
        return None
    arguments = json.loads(line)
    if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
        raise SystemExit(f"{WAIT}: expected a JSON list of strings on stdin, got {line[:200]!r}")
    return arguments


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == [WAIT]:
        waited = _arguments_from_stdin()
        if waited is None:
            return 0  # cancelled before it was given a backtest
        args = waited
    if len(args) < 2 or args[0] != "--markets":
        print(
            "usage: python -m strategies.freqtrade_offline --markets SNAPSHOT.json FREQTRADE_ARGS...",
            file=sys.stderr,
        )
        return 2
    install_frozen_markets(load_snapshot(Path(args[1])))
    from freqtrade.main import main as freqtrade_main

    try:
        freqtrade_main(args[2:])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def run_forked(
    arguments: Connection, environment: dict[str, str], folder: str, stdout: str, stderr: str
) -> None:
    """A forked process's life as the wrapper (see the module doc): its own session,
    ``environment``, ``folder`` as working folder, its output in the files ``stdout`` and
    ``stderr``; then Freqtrade's imports, then the arguments from the pipe ``arguments``
    (closed without any: it ends without running anything). Ends its process with the
    wrapper's exit code, as :func:`main` returns it."""
    os.setsid()  # its own group, which the caller ends whole
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(folder)
    sys.stdout.flush()
    sys.stderr.flush()
    for descriptor, path in ((1, stdout), (2, stderr)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(opened, descriptor)
        os.close(opened)
    _import_freqtrade()
    try:
        given = arguments.recv()
    except EOFError:
        exit_without_teardown(0)  # cancelled before it was given a backtest
    finally:
        arguments.close()
    exit_without_teardown(main(given))


if __name__ == "__main__":
    exit_without_teardown(main())
