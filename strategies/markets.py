"""Frozen exchange market snapshots, so the real Freqtrade engine runs with no network.

Freqtrade loads an exchange's markets over the network at start-up (its
maintainers declined an offline mode: freqtrade issues 6077, 5526, 12456). A
snapshot is the ``markets`` dict ccxt would have loaded, stored as JSON at
``<userdir>/markets/<exchange>.json``: written from the real exchange by
``tradingbot markets snapshot --online`` when there is network, or generated
for the imported pairs when not. :mod:`strategies.freqtrade_offline` feeds it
to ccxt in place of the network call.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from common.atomic import write_text_atomic
from common.errors import TradingbotError
from common.layout import UserDir

# Binance-like spot defaults for generated markets (tick-size precision, as ccxt uses).
DEFAULT_PRECISION = {"amount": 1e-8, "price": 1e-8, "cost": 1e-8, "base": 1e-8, "quote": 1e-8}
DEFAULT_LIMITS = {
    "amount": {"min": 1e-8, "max": 1e9},
    "price": {"min": 1e-8, "max": 1e9},
    "cost": {"min": 1.0, "max": None},
    "leverage": {"min": None, "max": None},
    "market": {"min": None, "max": None},
}


class MarketsError(TradingbotError):
    """A missing or unusable market snapshot."""


def snapshot_path(layout: UserDir, exchange: str) -> Path:
    return layout.market_snapshot(exchange)


def market_entry(pair: str, fee: float = 0.001) -> dict[str, Any]:
    """A minimal spot market for ``pair`` that ccxt and Freqtrade accept."""
    base, quote = pair.split("/")
    return {
        "id": f"{base}{quote}",
        "symbol": pair,
        "base": base,
        "quote": quote,
        "baseId": base,
        "quoteId": quote,
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "contract": False,
        "linear": None,
        "inverse": None,
        "active": True,
        "taker": fee,
        "maker": fee,
        "precision": dict(DEFAULT_PRECISION),
        "limits": json.loads(json.dumps(DEFAULT_LIMITS)),
        "info": {"generated_by": "tradingbot (offline snapshot)"},
    }


def imported_pairs(layout: UserDir, exchange: str) -> list[str]:
    """Pairs with candles under ``<userdir>/data/<exchange>/`` (from Freqtrade file names)."""
    pairs = set()
    for path in layout.data(exchange).glob("*.feather"):
        stem = path.name.rsplit("-", 1)[0]
        if "_" in stem:
            base, quote = stem.split("_", 1)
            pairs.add(f"{base}/{quote}")
    return sorted(pairs)


def generate_snapshot(layout: UserDir, exchange: str, pairs: list[str] | None = None) -> Path:
    """Write a generated snapshot for ``pairs`` (default: every imported pair)."""
    pairs = pairs or imported_pairs(layout, exchange)
    if not pairs:
        raise MarketsError(
            f"no imported pairs for {exchange} in {layout.data(exchange)}",
            hint="import candles first: tradingbot data import FILE --pair BASE/QUOTE --timeframe TF",
        )
    path = snapshot_path(layout, exchange)
    existing = load_snapshot(path) if path.exists() else {}
    markets = {**existing, **{pair: existing.get(pair) or market_entry(pair) for pair in pairs}}
    write_text_atomic(path, json.dumps(markets, indent=1, sort_keys=True))
    return path


def fetch_snapshot(layout: UserDir, exchange: str) -> Path:
    """Write the real exchange's markets (needs network)."""
    import ccxt

    try:
        api = getattr(ccxt, exchange)()
        markets = api.load_markets()
    except AttributeError as exc:
        raise MarketsError(f"unknown exchange {exchange!r}") from exc
    except ccxt.BaseError as exc:
        raise MarketsError(
            f"could not load {exchange} markets ({exc.__class__.__name__}: {exc})",
            hint="no network? generate a snapshot for the imported pairs instead (without --online)",
        ) from exc
    path = snapshot_path(layout, exchange)
    write_text_atomic(path, json.dumps(markets, indent=1, sort_keys=True, default=str))
    return path


def load_snapshot(path: Path) -> dict[str, Any]:
    try:
        markets = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MarketsError(
            f"{path}: no market snapshot", hint="run: tradingbot markets snapshot"
        ) from None
    except json.JSONDecodeError as exc:
        raise MarketsError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(markets, dict) or not markets:
        raise MarketsError(f"{path}: expected a non-empty JSON object of markets")
    required = ("id", "symbol", "base", "quote", "spot", "precision")
    for symbol, market in markets.items():
        missing = [key for key in required if key not in market]
        if missing:
            raise MarketsError(f"{path}: market {symbol!r} lacks {missing}")
    return markets


def snapshot_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
