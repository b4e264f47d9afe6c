"""Repairs an import makes when asked: bad ticks and OHLC violations fixed, gaps filled;
every change listed."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from features.candles import (
    PRICE_COLUMNS,
)
from features.data.quality_report import QualityReport, Repair
from features.timeframes import timeframe_to_seconds

_COLUMN = {name: j for j, name in enumerate(PRICE_COLUMNS)}
_OPEN, _HIGH, _LOW, _CLOSE = (_COLUMN[name] for name in PRICE_COLUMNS)


class _Prices:
    """The price matrix being repaired, and every change made to it."""

    def __init__(self, candles: pd.DataFrame) -> None:
        self.values = candles[list(PRICE_COLUMNS)].to_numpy(dtype="float64", copy=True)
        self.dates = [d.to_pydatetime() for d in candles["date"]]
        self.repairs: list[Repair] = []

    def change(self, i: int, column: str, new: float, reason: str) -> None:
        old = float(self.values[i, _COLUMN[column]])
        if old != new:
            self.values[i, _COLUMN[column]] = new
            self.repairs.append(
                Repair(date=self.dates[i], column=column, old=old, new=new, reason=reason)
            )


def _repair_open_close(prices: _Prices, i: int, column: str) -> None:
    values, last = prices.values, len(prices.values) - 1
    if column == "open" and i > 0:
        prices.change(
            i, "open", float(values[i - 1, _CLOSE]), "bad tick: set to the previous close"
        )
    elif column == "open":
        prices.change(i, "open", float(values[i, _CLOSE]), "bad tick: set to the close")
    elif column == "close" and i < last:
        prices.change(i, "close", float(values[i + 1, _OPEN]), "bad tick: set to the next open")
    elif column == "close":
        prices.change(i, "close", float(values[i, _OPEN]), "bad tick: set to the open")


def _repair_high_low(prices: _Prices, i: int, column: str) -> None:
    body = (prices.values[i, _OPEN], prices.values[i, _CLOSE])
    if column == "high":
        prices.change(i, "high", float(max(body)), "bad tick: set to max(open, close)")
    elif column == "low":
        prices.change(i, "low", float(min(body)), "bad tick: set to min(open, close)")


def _widen_to_invariant(prices: _Prices) -> None:
    values = prices.values
    for row in np.flatnonzero(values[:, _HIGH] < values.max(axis=1)):
        i = int(row)
        reason = "OHLC invariant: high raised to the largest price"
        prices.change(i, "high", float(values[i].max()), reason)
    for row in np.flatnonzero(values[:, _LOW] > values.min(axis=1)):
        i = int(row)
        reason = "OHLC invariant: low lowered to the smallest price"
        prices.change(i, "low", float(values[i].min()), reason)


def repair_values(candles: pd.DataFrame, report: QualityReport) -> list[Repair]:
    """Repair flagged values in place; return one :class:`Repair` per changed value.

    A bad open becomes the previous close (the candle's own close for the first
    candle); a bad close becomes the next open (its own open for the last); a bad
    high or low is rebuilt from the candle's repaired open and close. Finally high
    and low are widened to contain open and close (the OHLC invariant).
    """
    prices = _Prices(candles)
    position = {d: i for i, d in enumerate(prices.dates)}
    bad = sorted(
        {(position[f.date], f.column) for f in report.bad_ticks},
        key=lambda item: (item[0], _COLUMN[item[1]]),
    )
    for i, column in bad:  # opens and closes first: highs and lows are rebuilt from them
        _repair_open_close(prices, i, column)
    for i, column in bad:
        _repair_high_low(prices, i, column)
    _widen_to_invariant(prices)
    candles[list(PRICE_COLUMNS)] = prices.values
    return sorted(prices.repairs, key=lambda r: (r.date, _COLUMN[r.column]))


def fill_gaps(candles: pd.DataFrame, timeframe: str) -> tuple[pd.DataFrame, list[datetime]]:
    """Insert flat candles (open=high=low=close=previous close, volume 0) into gaps.

    This is also what Freqtrade does when it fills missing candles; the filled
    dates are listed in the report so they can always be told apart.
    """
    full = pd.date_range(
        candles["date"].iloc[0],
        candles["date"].iloc[-1],
        freq=f"{timeframe_to_seconds(timeframe)}s",
    )
    filled = candles.set_index("date").reindex(full)
    new = filled["close"].isna().to_numpy()
    previous_close = filled["close"].ffill()
    for column in PRICE_COLUMNS:
        filled[column] = filled[column].fillna(previous_close)
    filled["volume"] = filled["volume"].fillna(0.0)
    filled = filled.rename_axis("date").reset_index()
    filled["date"] = filled["date"].astype("datetime64[ns, UTC]")
    return filled, [d.to_pydatetime() for d in filled["date"][new]]
