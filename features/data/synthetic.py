"""A seeded synthetic regime-switching market, for demos and tests without real data.

Regimes follow a Markov chain. In each regime the 1-candle log return, the wick
size and the log volume are Gaussian with regime-specific parameters, so that a
regime model has something real to find. The generating parameters are returned
with the candles, so tests can compare a fitted model against the truth.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.timeframes import timeframe_to_seconds


class RegimeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    return_mean: float  # per-candle log return mean
    return_std: float  # per-candle log return std
    wick_std: float  # std of the half-normal log wick beyond the body
    log_volume_mean: float
    log_volume_std: float


class MarketParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    regimes: tuple[RegimeParams, ...]
    transition: tuple[tuple[float, ...], ...]  # row-stochastic, K x K
    start_price: float = 20_000.0
    timeframe: str = "1h"
    start: datetime = Field(default=datetime(2020, 1, 1, tzinfo=UTC))


def default_market() -> MarketParams:
    """Three overlapping regimes that differ in drift, volatility, wicks and volume.

    Hard on purpose: the Bayes-optimal causal filter (true parameters) is right
    about 94% of the time and its argmax switches 2-3x as often as the true regime.
    """
    return MarketParams(
        regimes=(
            RegimeParams(
                name="bull",
                return_mean=0.0010,
                return_std=0.007,
                wick_std=0.0035,
                log_volume_mean=6.0,
                log_volume_std=0.5,
            ),
            RegimeParams(
                name="bear",
                return_mean=-0.0012,
                return_std=0.010,
                wick_std=0.0045,
                log_volume_mean=6.35,
                log_volume_std=0.5,
            ),
            RegimeParams(
                name="sideways",
                return_mean=0.0,
                return_std=0.0045,
                wick_std=0.0025,
                log_volume_mean=5.7,
                log_volume_std=0.5,
            ),
        ),
        transition=(
            (0.992, 0.004, 0.004),
            (0.005, 0.990, 0.005),
            (0.004, 0.004, 0.992),
        ),
    )


def generate(
    candles: int, *, seed: int = 7, params: MarketParams | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Return (candle frame, true regime index per candle), reproducible for a seed."""
    params = params or default_market()
    rng = np.random.default_rng(seed)
    transition = np.asarray(params.transition)
    k = len(params.regimes)
    states = np.empty(candles, dtype="int64")
    states[0] = rng.integers(k)
    draws = rng.random(candles)
    cumulative = transition.cumsum(axis=1)
    for t in range(1, candles):
        states[t] = min(int(np.searchsorted(cumulative[states[t - 1]], draws[t])), k - 1)
    mean = np.array([r.return_mean for r in params.regimes])[states]
    std = np.array([r.return_std for r in params.regimes])[states]
    wick = np.array([r.wick_std for r in params.regimes])[states]
    vol_mean = np.array([r.log_volume_mean for r in params.regimes])[states]
    vol_std = np.array([r.log_volume_std for r in params.regimes])[states]
    returns = rng.normal(mean, std)
    close = params.start_price * np.exp(np.cumsum(returns))
    open_ = np.r_[params.start_price, close[:-1]]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, wick)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, wick)))
    volume = np.exp(rng.normal(vol_mean, vol_std))
    step = timeframe_to_seconds(params.timeframe)
    start = pd.Timestamp(params.start).tz_convert("UTC")
    dates = start + pd.to_timedelta(np.arange(candles) * step, unit="s")
    frame = pd.DataFrame(
        {
            "date": pd.DatetimeIndex(dates).astype("datetime64[ns, UTC]"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
    return frame, states
