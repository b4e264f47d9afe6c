"""Volatility targeting: size an exposure by forecast risk, with a rebalancing rule that
respects fees.

``desired[t] = exposure[t] * min(cap, target / forecast_volatility[t])`` (shares of
equity, volatilities annualised). What is *held* changes only when

* the unsized exposure changes (a regime or rule decision acts at once), or
* a day or more after the position was last sized, the desired value is more than
  ``band`` away from what is held (at most one rebalance a day, and none for small
  moves: fees are real).

:func:`rebalance_due` is that rule for one candle; the walk-forward simulation
(:func:`held_exposure`) and the Freqtrade strategy (``RegimeAllocationStrategy``, whose
held value and sizing time are its open trade's) both call it, so they trade the same
rule. Causal: every value at t uses inputs at t or before.

The target is a risk budget, not a number fitted to results:
:data:`DEFAULT_TARGET_VOLATILITY` (60% a year) for every market, unless a spec's
``[sizing]`` sets another.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# The risk budget: hold at most full exposure, and scale down when the forecast annual
# volatility is above 60%. Chosen before any result, as a trader states a budget: about
# the volatility of the large crypto markets in their calmer years, so the position is
# cut in their turbulent ones. The same number on every market (never tuned per market).
DEFAULT_TARGET_VOLATILITY = 0.6
DEFAULT_BAND = 0.1  # share of equity: smaller differences are not worth two fees
DEFAULT_CAP = 1.0  # no leverage


class RiskBudget(NamedTuple):
    """What a sized position aims at: ``target_volatility`` (annualised, e.g. 0.6) and
    the ``band`` (a share of equity) within which it is not resized."""

    target_volatility: float = DEFAULT_TARGET_VOLATILITY
    band: float = DEFAULT_BAND


DEFAULT_RISK_BUDGET = RiskBudget()


def desired_exposure(
    exposure: FloatArray,
    forecast_volatility: FloatArray,
    target_volatility: FloatArray | float,
    cap: float = DEFAULT_CAP,
) -> FloatArray:
    """``exposure * min(cap, target / forecast)`` per candle, clipped to 0..cap; where the
    forecast or the target is unknown, the unsized exposure (nothing to size by)."""
    base = np.asarray(exposure, dtype="float64")
    forecast = np.asarray(forecast_volatility, dtype="float64")
    target = np.broadcast_to(np.asarray(target_volatility, dtype="float64"), base.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.minimum(cap, target / forecast)
    usable = np.isfinite(scale) & (forecast > 0)
    desired = np.where(usable, base * scale, base)
    clipped: FloatArray = np.where(np.isfinite(desired), np.clip(desired, 0.0, cap), desired)
    return clipped


REBALANCE_DAYS = 1.0  # at most one rebalance a day
DAY = np.timedelta64(86_400_000_000_000, "ns")


def rebalance_due(
    desired: float, held: float, exposure_changed: bool, days_since_sized: float, band: float
) -> bool:
    """Move what is held to ``desired`` now? At once when the unsized exposure changed;
    otherwise only a day or more after the position was last sized, and when the gap
    exceeds ``band``."""
    return exposure_changed or (days_since_sized >= REBALANCE_DAYS and abs(desired - held) > band)


def held_exposure(
    desired: FloatArray,
    exposure: FloatArray,
    dates: pd.Series | NDArray[np.datetime64],
    band: float = DEFAULT_BAND,
) -> FloatArray:
    """What a strategy following :func:`rebalance_due` holds at each candle (shape (n,),
    NaN counted as 0: flat), starting flat before the first candle."""
    want = np.nan_to_num(np.asarray(desired, dtype="float64"), nan=0.0)
    base = np.nan_to_num(np.asarray(exposure, dtype="float64"), nan=0.0)
    stamps = pd.Series(pd.to_datetime(dates, utc=True)).to_numpy(dtype="datetime64[ns]")
    held: FloatArray = np.empty_like(want)
    current, previous = 0.0, 0.0
    day = int(DAY.astype("int64"))
    # the loop runs on Python numbers: numpy scalars cost ten times as much per candle
    nanoseconds = stamps.astype("int64").tolist()
    sized_at = nanoseconds[0] - day if nanoseconds else 0
    rows = zip(want.tolist(), base.tolist(), nanoseconds, strict=True)
    for t, (wanted, unsized, stamp) in enumerate(rows):
        if rebalance_due(wanted, current, unsized != previous, (stamp - sized_at) / day, band):
            current, sized_at = wanted, stamp
        held[t] = current
        previous = unsized
    return held


def vol_target_exposure(
    exposure: FloatArray,
    forecast_volatility: FloatArray,
    dates: pd.Series | NDArray[np.datetime64],
    target_volatility: FloatArray | float = DEFAULT_TARGET_VOLATILITY,
    *,
    cap: float = DEFAULT_CAP,
    band: float = DEFAULT_BAND,
) -> FloatArray:
    """The held, sized exposure per candle (shape (n,), 0..cap): :func:`desired_exposure`
    followed by :func:`held_exposure`."""
    desired = desired_exposure(exposure, forecast_volatility, target_volatility, cap)
    return held_exposure(desired, exposure, dates, band)
