"""Timeframe strings ("5m", "1h", "1d", "1w") as Freqtrade writes them."""

from __future__ import annotations

import re

from common.errors import SpecError

_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIMEFRAME = re.compile(r"^(\d+)([mhdw])$")
# 1970-01-01 was a Thursday; Freqtrade's (and the exchanges') weeks start on Monday.
_WEEK_OFFSET_SECONDS = 4 * 86400


# The candle lengths exchanges serve and Freqtrade trades (ccxt's common set).
TIMEFRAMES = (
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "3d",
    "1w",
)


def timeframe_to_seconds(timeframe: str) -> int:
    """Length of one candle in seconds, e.g. ``"1h" -> 3600``."""
    match = _TIMEFRAME.match(timeframe)
    if match is None or timeframe not in TIMEFRAMES:
        raise SpecError(
            f"{timeframe!r} is not a timeframe",
            hint=f"use one of {', '.join(TIMEFRAMES)}",
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def grid_offset_seconds(timeframe: str) -> int:
    """Offset of the candle grid from the Unix epoch (weeks start on Monday)."""
    return _WEEK_OFFSET_SECONDS if timeframe.endswith("w") else 0
