"""Volatility targeting: size an exposure by forecast risk, with a rebalancing rule that
respects fees.

``sized[t] = exposure[t] * min(cap, target / forecast_volatility[t])`` (shares of equity,
volatilities annualised), held until either the unsized exposure changes (a regime or
rule decision acts at once) or, at a daily rebalance, the sized value has moved by more
than ``band`` from what is held. Causal: every value at t uses inputs at t or before.

The target is not a number picked from results: by default it is the median of the
market's own trailing 30-day volatility over the year before each candle
(:func:`past_median_volatility`), so a sized position holds less than its exposure when
risk is above its norm and, up to ``cap``, more when it is below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.volatility import trailing_log_volatility

FloatArray = NDArray[np.float64]

TARGET_WINDOW_DAYS = 30  # the volatility whose norm is the target
TARGET_HISTORY_DAYS = 365  # the norm: its median over the past year


def past_median_volatility(
    close: pd.Series | FloatArray, periods_per_year: float, candles_per_day: float
) -> FloatArray:
    """The median, over the last year of candles, of the trailing 30-day annualised
    volatility: a target that each market sets for itself from its past only. NaN until
    a quarter of that year exists. Shape (n,)."""
    window = max(2, round(TARGET_WINDOW_DAYS * candles_per_day))
    monthly = np.exp(trailing_log_volatility(close, window, periods_per_year))
    history = max(1, round(TARGET_HISTORY_DAYS * candles_per_day))
    median = pd.Series(monthly).rolling(history, min_periods=history // 4).median()
    return median.to_numpy(dtype="float64")


def vol_target_exposure(
    exposure: FloatArray,
    forecast_volatility: FloatArray,
    target_volatility: FloatArray | float,
    *,
    candles_per_day: float,
    cap: float = 1.0,
    band: float = 0.1,
) -> FloatArray:
    """Sized exposure per candle (shape (n,), 0..cap): see the module doc. A candle
    without a forecast or a target keeps the unsized exposure (nothing to size by);
    rebalances fall every ``candles_per_day`` candles from the first."""
    base = np.nan_to_num(np.asarray(exposure, dtype="float64"), nan=0.0)
    forecast = np.asarray(forecast_volatility, dtype="float64")
    target = np.broadcast_to(np.asarray(target_volatility, dtype="float64"), base.shape)
    scale = np.minimum(cap, target / forecast)
    desired = np.where(np.isfinite(scale), base * scale, base)
    step = max(1, round(candles_per_day))
    held = np.empty_like(base)
    current = 0.0
    for t in range(len(base)):
        changed = t == 0 or base[t] != base[t - 1]
        due = t % step == 0 and abs(desired[t] - current) > band
        if changed or due:
            current = float(desired[t])
        held[t] = current
    sized: FloatArray = np.clip(held, 0.0, cap)
    return sized
