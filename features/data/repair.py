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


def repair_values(candles: pd.DataFrame, report: QualityReport) -> list[Repair]:
    """Repair flagged values in place; return one :class:`Repair` per changed value.

    A bad open becomes the previous close (the candle's own close for the first
    candle); a bad close becomes the next open (its own open for the last); a bad
    high or low is rebuilt from the candle's repaired open and close. Finally high
    and low are widened to contain open and close (the OHLC invariant).
    """
    prices = candles[list(PRICE_COLUMNS)].to_numpy(dtype="float64", copy=True)
    dates = [d.to_pydatetime() for d in candles["date"]]
    position = {d: i for i, d in enumerate(dates)}
    repairs: list[Repair] = []
    col = {name: j for j, name in enumerate(PRICE_COLUMNS)}
    last = len(prices) - 1

    def change(i: int, column: str, new: float, reason: str) -> None:
        old = float(prices[i, col[column]])
        if old != new:
            prices[i, col[column]] = new
            repairs.append(Repair(date=dates[i], column=column, old=old, new=new, reason=reason))

    bad = sorted(
        {(position[f.date], f.column) for f in report.bad_ticks},
        key=lambda item: (item[0], col[item[1]]),
    )
    for i, column in bad:
        if column == "open" and i > 0:
            change(i, "open", float(prices[i - 1, 3]), "bad tick: set to the previous close")
        elif column == "open":
            change(i, "open", float(prices[i, 3]), "bad tick: set to the close")
        elif column == "close" and i < last:
            change(i, "close", float(prices[i + 1, 0]), "bad tick: set to the next open")
        elif column == "close":
            change(i, "close", float(prices[i, 0]), "bad tick: set to the open")
    for i, column in bad:
        if column == "high":
            change(
                i,
                "high",
                float(max(prices[i, 0], prices[i, 3])),
                "bad tick: set to max(open, close)",
            )
        elif column == "low":
            change(
                i,
                "low",
                float(min(prices[i, 0], prices[i, 3])),
                "bad tick: set to min(open, close)",
            )
    for row in np.flatnonzero(prices[:, 1] < prices.max(axis=1)):
        i = int(row)
        change(
            i,
            "high",
            float(prices[i].max()),
            "OHLC invariant: high raised to the largest price",
        )
    for row in np.flatnonzero(prices[:, 2] > prices.min(axis=1)):
        i = int(row)
        change(
            i,
            "low",
            float(prices[i].min()),
            "OHLC invariant: low lowered to the smallest price",
        )
    candles[list(PRICE_COLUMNS)] = prices
    repairs.sort(key=lambda r: (r.date, col[r.column]))
    return repairs


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
