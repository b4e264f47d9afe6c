"""Simple trend rules every model is judged against, on the same candles and fees.

Each rule gives a position per candle (1 long, 0 flat), decided from daily closes
that are complete at that candle (resampled causally, as higher-timeframe features
are), so a rule never uses a close it could not have seen:

* ``sma50_daily``: long while the last daily close is above the mean of the last
  50 daily closes;
* ``momentum_30d``: long while the last daily close is above the close 30 days
  before it.

Flat during their warm-up (fewer than 50 or 31 daily closes).

:func:`rule_positions` adds the same rules sized by risk (:mod:`ml.sizing`: the
realised volatility of the last 7 daily closes against the target volatility, cap 1,
band 0.1, at most daily): ``always_long_sized`` and ``sma50_sized``. A strategy sized by forecast risk is
judged against rules sized the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.pipeline import resample
from features.timeframes import timeframe_to_seconds
from ml.sizing import DEFAULT_BAND, DEFAULT_TARGET_VOLATILITY, vol_target_exposure
from ml.volatility import trailing_log_volatility

FloatArray = NDArray[np.float64]
DAY = 86_400
SMA_DAYS = 50
MOMENTUM_DAYS = 30
RULES = ("sma50_daily", "momentum_30d")


def _rules(close: pd.Series, days_per_candle: float) -> dict[str, pd.Series]:
    sma_window = max(2, round(SMA_DAYS / days_per_candle))
    momentum_lag = max(1, round(MOMENTUM_DAYS / days_per_candle))
    sma = close.rolling(sma_window, min_periods=sma_window).mean()
    return {
        "sma50_daily": (close > sma).astype("float64"),
        "momentum_30d": (close > close.shift(momentum_lag)).astype("float64"),
    }


def _on_daily_closes(
    candles: pd.DataFrame,
    timeframe: str,
    compute: Callable[[pd.Series, float], dict[str, pd.Series]],
) -> dict[str, FloatArray]:
    """``compute(daily closes, days per candle)`` mapped onto ``candles``: each row gets
    the values of the last daily close complete at it (NaN before the first)."""
    seconds = timeframe_to_seconds(timeframe)
    if seconds >= DAY:  # daily or slower candles are their own closes
        computed = compute(candles["close"].astype("float64"), seconds / DAY)
        return {name: values.to_numpy(dtype="float64") for name, values in computed.items()}
    daily = resample(candles, timeframe, "1d")
    values = pd.DataFrame(compute(daily["close"].astype("float64"), 1.0))
    names = list(values.columns)
    values["available_at"] = daily["available_at"].to_numpy()
    merged = pd.merge_asof(
        candles[["date"]],
        values.sort_values("available_at"),
        left_on="date",
        right_on="available_at",
        direction="backward",
    )
    return {name: merged[name].to_numpy(dtype="float64") for name in names}


def trend_positions(candles: pd.DataFrame, timeframe: str) -> dict[str, FloatArray]:
    """Positions (one per row of ``candles``) of the daily trend rules."""
    rules = _on_daily_closes(candles, timeframe, _rules)
    return {name: np.nan_to_num(rules[name], nan=0.0) for name in RULES}


SIZED_RULES = ("always_long_sized", "sma50_sized")
SIZING_WINDOW_DAYS = 7  # the trailing volatility the sized rules hold by


def _trailing_week(close: pd.Series, days_per_candle: float) -> dict[str, pd.Series]:
    window = max(2, round(SIZING_WINDOW_DAYS / days_per_candle))
    per_year = 365.0 / days_per_candle
    return {"volatility": pd.Series(np.exp(trailing_log_volatility(close, window, per_year)))}


def trailing_week_volatility(candles: pd.DataFrame, timeframe: str) -> FloatArray:
    """The annualised realised volatility of the last 7 daily closes complete at each
    candle (of the candles themselves when daily): the forecast the sized rules hold by.
    Causal; NaN until 8 daily closes exist. Shape (n,)."""
    return _on_daily_closes(candles, timeframe, _trailing_week)["volatility"]


def rule_positions(
    candles: pd.DataFrame,
    timeframe: str,
    target_volatility: float = DEFAULT_TARGET_VOLATILITY,
    band: float = DEFAULT_BAND,
) -> dict[str, FloatArray]:
    """:func:`trend_positions` and :data:`SIZED_RULES`: positions (shares of equity, one
    per row of ``candles``), causal. The sized rules hold by :func:`trailing_week_volatility`
    toward ``target_volatility`` with ``band`` (a sized strategy passes its own)."""
    rules = trend_positions(candles, timeframe)
    forecast = trailing_week_volatility(candles, timeframe)
    dates = candles["date"]
    for name, base in (
        ("always_long_sized", np.ones(len(candles))),
        ("sma50_sized", rules["sma50_daily"]),
    ):
        rules[name] = vol_target_exposure(base, forecast, dates, target_volatility, band=band)
    return rules
