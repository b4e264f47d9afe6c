"""Pure indicator functions: candles (or a Series) in, a Series out, index aligned.

Every function is causal: the value at candle t uses candles <= t only. Warm-up
rows are NaN, never back-filled. Units are stated per function; "per candle"
means not annualised. Standard indicators come from TA-Lib; only what TA-Lib
lacks is written here.

TA-Lib's exponential indicators (RSI, NATR, ADX, MACD) depend on where the
series starts (their "unstable period"): identical on any prefix of the same
series, slightly different when started elsewhere. Give live trading at least a
few hundred candles of history so the difference has decayed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib


class Columns:
    """Candle columns fetched once. A pandas DataFrame column access builds a new Series
    every time (tens of microseconds each); the pipeline reads the same five columns many
    times per build. Indexable like the frame it wraps, with the same values."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.index = frame.index
        self._frame = frame
        self._series: dict[str, pd.Series] = {}

    def __getitem__(self, name: str) -> pd.Series:
        if name not in self._series:
            self._series[name] = self._frame[name]
        return self._series[name]


Candles = pd.DataFrame | Columns


def _f64(series: pd.Series) -> np.ndarray:
    return np.ascontiguousarray(series.to_numpy(dtype="float64"))


def log_return(close: pd.Series, periods: int) -> pd.Series:
    """log(close_t / close_{t-periods}). Dimensionless. Warm-up: ``periods`` rows."""
    values = np.log(_f64(close))
    out = np.full_like(values, np.nan)
    out[periods:] = values[periods:] - values[:-periods]
    return pd.Series(out, index=close.index)


def realized_volatility(close: pd.Series, window: int) -> pd.Series:
    """Sample std of 1-candle log returns over ``window`` candles.

    Per candle, not annualised. Warm-up: ``window`` rows.
    """
    returns = log_return(close, 1)
    return returns.rolling(window, min_periods=window).std()


def log_range(high: pd.Series, low: pd.Series, window: int = 1) -> pd.Series:
    """log(high / low), averaged over ``window`` candles. Warm-up: ``window - 1`` rows.

    A volatility measure that sees within-candle moves (Parkinson's range).
    """
    values = pd.Series(np.log(_f64(high) / _f64(low)), index=high.index)
    return values if window == 1 else values.rolling(window, min_periods=window).mean()


def upper_wick(candles: Candles, window: int = 1) -> pd.Series:
    """(high - max(open, close)) / close, averaged over ``window`` candles. Fraction of price."""
    body_top = np.maximum(_f64(candles["open"]), _f64(candles["close"]))
    values = pd.Series(
        (_f64(candles["high"]) - body_top) / _f64(candles["close"]), index=candles.index
    )
    return values if window == 1 else values.rolling(window, min_periods=window).mean()


def lower_wick(candles: Candles, window: int = 1) -> pd.Series:
    """(min(open, close) - low) / close, averaged over ``window`` candles. Fraction of price."""
    body_bottom = np.minimum(_f64(candles["open"]), _f64(candles["close"]))
    values = pd.Series(
        (body_bottom - _f64(candles["low"])) / _f64(candles["close"]), index=candles.index
    )
    return values if window == 1 else values.rolling(window, min_periods=window).mean()


def body(candles: Candles, window: int = 1) -> pd.Series:
    """log(close / open), averaged over ``window`` candles. Dimensionless."""
    values = pd.Series(np.log(_f64(candles["close"]) / _f64(candles["open"])), index=candles.index)
    return values if window == 1 else values.rolling(window, min_periods=window).mean()


def sqrt_wick(candles: Candles, window: int = 1) -> pd.Series:
    """sqrt(log(high / low) - |log(close / open)|): the square root of the total log wick.

    Wicks are roughly half-normal in size; their square root is close to Gaussian,
    with a location that moves with the regime's intrabar volatility, which suits a
    Gaussian HMM. Averaged over ``window`` candles. Warm-up: ``window - 1`` rows.
    """
    log_range = np.log(_f64(candles["high"]) / _f64(candles["low"]))
    log_body = np.abs(np.log(_f64(candles["close"]) / _f64(candles["open"])))
    values = pd.Series(np.sqrt(np.maximum(log_range - log_body, 0.0)), index=candles.index)
    return values if window == 1 else values.rolling(window, min_periods=window).mean()


def log_volume(volume: pd.Series, window: int = 1) -> pd.Series:
    """log(1 + volume), averaged over ``window`` candles. Not stationary across years of
    growing volume: prefer :func:`log_volume_zscore` on long real histories."""
    values = pd.Series(np.log1p(_f64(volume)), index=volume.index)
    return values if window == 1 else values.rolling(window, min_periods=window).mean()


def rolling_zscore(values: pd.Series, window: int) -> pd.Series:
    """(x_t - mean) / std over the last ``window`` values, including x_t.

    In standard deviations. 0 where the window is constant (std 0: x_t equals the
    mean). Warm-up: ``window - 1`` rows.
    """
    rolling = values.rolling(window, min_periods=window)
    mean, std = rolling.mean().to_numpy(), rolling.std().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (values.to_numpy(dtype="float64") - mean) / std
    return pd.Series(np.where(std == 0, 0.0, z), index=values.index)


def log_volume_zscore(volume: pd.Series, window: int) -> pd.Series:
    """Rolling z-score of log(1 + volume) over ``window`` candles. Warm-up: ``window - 1`` rows."""
    return rolling_zscore(pd.Series(np.log1p(_f64(volume)), index=volume.index), window)


def close_zscore(close: pd.Series, window: int) -> pd.Series:
    """Rolling z-score of the close over ``window`` candles. Warm-up: ``window - 1`` rows."""
    return rolling_zscore(close.astype("float64"), window)


def rsi(close: pd.Series, window: int) -> pd.Series:
    """TA-Lib RSI, 0..100. Warm-up: ``window`` rows."""
    return pd.Series(talib.RSI(_f64(close), timeperiod=window), index=close.index)


def natr(candles: Candles, window: int) -> pd.Series:
    """TA-Lib normalised ATR: ATR / close, in percent. Warm-up: ``window`` rows."""
    values = talib.NATR(
        _f64(candles["high"]), _f64(candles["low"]), _f64(candles["close"]), timeperiod=window
    )
    return pd.Series(values, index=candles.index)


def adx(candles: Candles, window: int) -> pd.Series:
    """TA-Lib ADX (trend strength), 0..100. Warm-up: ``2 * window - 1`` rows."""
    values = talib.ADX(
        _f64(candles["high"]), _f64(candles["low"]), _f64(candles["close"]), timeperiod=window
    )
    return pd.Series(values, index=candles.index)


def mfi(candles: Candles, window: int) -> pd.Series:
    """TA-Lib money flow index, 0..100. Warm-up: ``window`` rows."""
    values = talib.MFI(
        _f64(candles["high"]),
        _f64(candles["low"]),
        _f64(candles["close"]),
        _f64(candles["volume"]),
        timeperiod=window,
    )
    return pd.Series(values, index=candles.index)


def bollinger_width(close: pd.Series, window: int, stds: float = 2.0) -> pd.Series:
    """TA-Lib Bollinger band width (upper - lower) / middle. Dimensionless. Warm-up: ``window - 1``."""
    upper, middle, lower = talib.BBANDS(_f64(close), timeperiod=window, nbdevup=stds, nbdevdn=stds)
    return pd.Series((upper - lower) / middle, index=close.index)


def bollinger_position(close: pd.Series, window: int, stds: float = 2.0) -> pd.Series:
    """TA-Lib Bollinger %B: (close - lower) / (upper - lower); 0.5 when the bands are flat."""
    upper, _, lower = talib.BBANDS(_f64(close), timeperiod=window, nbdevup=stds, nbdevdn=stds)
    width = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        position = np.where(width > 0, (_f64(close) - lower) / width, 0.5)
    position[np.isnan(upper)] = np.nan
    return pd.Series(position, index=close.index)


def macd_histogram(close: pd.Series, fast: int, slow: int, signal: int) -> pd.Series:
    """TA-Lib MACD histogram divided by the close: scale-free. Warm-up: ``slow + signal - 2``."""
    _, _, hist = talib.MACD(_f64(close), fastperiod=fast, slowperiod=slow, signalperiod=signal)
    return pd.Series(hist / _f64(close), index=close.index)


# -- slow-clock statistics: exponentially weighted over a finite window --------------------
#
# Weights 0.5 ** (lag / halflife) for lags 0 .. n-1, n = ceil(WINDOW_HALFLIVES * halflife),
# normalised over the lags that exist: from row n-1 on, the value at t depends on the last
# n candles only (the weight left out beyond them is 2 ** -WINDOW_HALFLIVES = 0.4%), so it
# is the same on any history that holds those n candles, in training on years of data and
# live on a bounded tail; before that it is the usual adjusted EWM of the rows so far
# (pandas'). Warm-up: ceil(halflife) returns. Full windows are dot products of fixed
# slices and the first rows a forward recursion, so any prefix gives the same bits.

WINDOW_HALFLIVES = 8.0


def ewm_window(halflife: float) -> int:
    """Candles one slow-clock value depends on (for a half-life in candles)."""
    return max(2, int(np.ceil(WINDOW_HALFLIVES * halflife)))


def _ewm_mean(values: np.ndarray, halflife: float) -> np.ndarray:
    n = ewm_window(halflife)
    weights = 0.5 ** (np.arange(n) / halflife)
    valid = np.isfinite(values)
    filled = np.where(valid, values, 0.0)
    out = np.full(len(values), np.nan)
    if len(values) >= n:  # full windows: one fixed-order dot product each
        totals = np.convolve(filled, weights, mode="valid")
        counts = np.convolve(valid.astype("float64"), weights, mode="valid")
        out[n - 1 :] = totals / counts
    head = min(n - 1, len(values))  # the first rows: pandas' adjusted EWM of the lags that exist
    out[:head] = pd.Series(values[:head]).ewm(halflife=halflife, adjust=True).mean().to_numpy()
    seen = np.cumsum(valid)
    out[seen < max(2, int(np.ceil(halflife)))] = np.nan  # warm-up
    return out


def _returns(close: pd.Series) -> np.ndarray:
    return log_return(close, 1).to_numpy()


def ewm_return(close: pd.Series, halflife: float) -> pd.Series:
    """Exponentially weighted mean of 1-candle log returns. Per candle."""
    return pd.Series(_ewm_mean(_returns(close), halflife), index=close.index)


def _downside_deviation(returns: np.ndarray, halflife: float) -> np.ndarray:
    deviation: np.ndarray = np.sqrt(_ewm_mean(np.minimum(returns, 0.0) ** 2, halflife))
    return deviation


def ewm_log_downside_deviation(close: pd.Series, halflife: float) -> pd.Series:
    """log of the exponentially weighted downside deviation sqrt(E[min(r, 0)^2]) of
    1-candle log returns; the log makes its scale usable for clustering. A stretch
    with no loss at all gives log(1e-8)."""
    deviation = _downside_deviation(_returns(close), halflife)
    return pd.Series(np.log(deviation + 1e-8), index=close.index)


def ewm_sortino(close: pd.Series, halflife: float) -> pd.Series:
    """Exponentially weighted mean return over downside deviation (same weights).
    Per candle, not annualised; dimensionless."""
    returns = _returns(close)
    mean = _ewm_mean(returns, halflife)
    return pd.Series(mean / (_downside_deviation(returns, halflife) + 1e-8), index=close.index)


def trend_distance(close: pd.Series, halflife: float) -> pd.Series:
    """log(close / weighted average close) in units of the volatility expected over the
    half-life: divided by the weighted std of 1-candle log returns times sqrt(halflife).
    Dimensionless; positive above the average, negative below."""
    prices = close.to_numpy(dtype="float64")
    returns = _returns(close)
    average = np.full(len(prices), np.nan)
    average[1:] = _ewm_mean(prices, halflife)[1:]  # same warm-up as the return statistics
    mean = _ewm_mean(returns, halflife)
    variance = np.maximum(_ewm_mean(returns**2, halflife) - mean**2, 0.0)
    scale = np.sqrt(variance) * np.sqrt(halflife) + 1e-12
    return pd.Series(np.log(prices / average) / scale, index=close.index)
