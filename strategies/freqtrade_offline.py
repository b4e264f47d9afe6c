"""Run the real Freqtrade CLI with exchange markets from a frozen snapshot.

    python -m strategies.freqtrade_offline --markets SNAPSHOT.json backtesting -c config.json ...

Everything after the snapshot option goes to ``freqtrade`` unchanged. The only
change to Freqtrade is the coroutine ``Exchange._api_reload_markets``, which
normally downloads the markets: here it feeds the snapshot to ccxt through its
own ``set_markets`` and returns ``markets``, as the download would have.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from strategies.markets import load_snapshot


def install_frozen_markets(markets: dict[str, Any]) -> None:
    from freqtrade.exchange.exchange import Exchange

    async def _api_reload_markets(self: Any, reload: bool = False) -> Any:
        self._api_async.set_markets(markets)
        return self._api_async.markets

    Exchange._api_reload_markets = _api_reload_markets


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
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


if __name__ == "__main__":
    sys.exit(main())
