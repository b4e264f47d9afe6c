"""The newest rows of the feature frame, computed in numpy from the candles they need.

``build_tail(candles, spec, timeframe, rows)`` returns what
``build(candles, spec, timeframe).iloc[-rows:]`` returns, for the live path, where
one new candle needs one new row. :func:`features.pipeline.build` computes every
row of every column through pandas Series; that overhead, not the arithmetic, is
most of a live step. Here each column is computed for its last ``rows`` values
only, from plain arrays:

* differences, per-candle ratios and everything from TA-Lib: the same operations
  on the same values, so the same bits;
* rolling means and standard deviations: one sum per window over a
  ``(rows, window)`` view instead of pandas' running sums, so the same values up
  to rounding (relative difference below 1e-9, tested; pandas' running sums carry
  rounding from every earlier row, these do not);
* slow-clock statistics: the indicator's own function on the slice it depends
  on (full-window values are fixed-order dot products, so the same bits);
* higher-timeframe blocks: the batch pipeline's code on the candles given (they
  are rare and need the resampled history anyway);
* reference pairs: the same, on as many of the reference's candles (up to the last
  of ours) as ours.

Like ``build``, the result depends on the candles passed: TA-Lib's exponential
indicators depend on where the series starts (see :mod:`features.indicators`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import talib
from numpy.lib.stride_tricks import as_strided

from common.errors import DataError
from features import indicators as ind
from features.feature_spec import (
    FeatureSpec,
    MacdFeature,
    SlowClockFeature,
    WindowedFeature,
    reference_suffix,
)
from features.pipeline import higher_timeframe_columns, reference, shifted_name
from features.timeframes import timeframe_to_seconds

_PRICES = ("open", "high", "low", "close", "volume")


class _Arrays:
    """The candle columns as contiguous float64 arrays, and the rows wanted from them."""

    def __init__(self, candles: pd.DataFrame, rows: int) -> None:
        self.values = {
            name: np.ascontiguousarray(candles[name].to_numpy(dtype="float64")) for name in _PRICES
        }
        self.size = len(candles)
        self.rows = rows

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def recent(self, name: str, needed: int) -> np.ndarray:
        """The last ``needed`` values of a candle column."""
        return self.values[name][max(0, self.size - needed) :]

    def last(self, values: np.ndarray) -> np.ndarray:
        """The wanted rows of a column that ends at the last candle."""
        return values[len(values) - self.rows :]

    def windows(self, values: np.ndarray, window: int) -> np.ndarray:
        """``(rows, window)``: the ``window`` values ending at each wanted row; NaN where a
        row has fewer than ``window`` values before it (pandas' ``min_periods``)."""
        needed = self.rows + window - 1
        tail = values[max(0, len(values) - needed) :]
        if len(tail) < needed:
            tail = np.concatenate([np.full(needed - len(tail), np.nan), tail])
        tail = np.ascontiguousarray(tail)
        # a read-only strided view (numpy's sliding_window_view checks cost more than the sums)
        step = tail.strides[0]
        view: np.ndarray = as_strided(
            tail, shape=(self.rows, window), strides=(step, step), writeable=False
        )
        return view


def _rolling_mean(arrays: _Arrays, values: np.ndarray, window: int) -> np.ndarray:
    if window == 1:
        return arrays.last(values)
    result: np.ndarray = arrays.windows(values, window).mean(axis=1)
    return result


def _rolling_std(windows: np.ndarray) -> np.ndarray:
    std: np.ndarray = windows.std(axis=1, ddof=1)
    # pandas gives exactly 0 for a window of equal values; a sum of equal values divided
    # back need not give the value itself, so say so explicitly
    std[windows.max(axis=1) == windows.min(axis=1)] = 0.0
    return std


def _zscore(arrays: _Arrays, values: np.ndarray, window: int) -> np.ndarray:
    windows = arrays.windows(values, window)
    std = _rolling_std(windows)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (arrays.last(values) - windows.mean(axis=1)) / std
    return np.where(std == 0, 0.0, z)


def _lagged(values: np.ndarray, arrays: _Arrays, periods: int) -> np.ndarray:
    """``values[t] - values[t - periods]`` at the wanted rows (NaN without a lag)."""
    windows = arrays.windows(values, periods + 1)
    lagged: np.ndarray = windows[:, -1] - windows[:, 0]
    return lagged


def _log_returns(arrays: _Arrays, needed: int) -> np.ndarray:
    """1-candle log returns of the last ``needed`` candles (NaN for the first candle)."""
    log_close = np.log(arrays["close"][max(0, arrays.size - needed - 1) :])
    returns = np.diff(log_close)
    if arrays.size <= needed:
        returns = np.concatenate([[np.nan], returns])
    result: np.ndarray = returns
    return result


def _windowed(arrays: _Arrays, kind: str, window: int) -> np.ndarray:
    if kind in _TALIB:
        o, h, low, c, v = (arrays[name] for name in _PRICES)
        return arrays.last(_TALIB[kind](o, h, low, c, v, window))
    # the others need only the candles of the wanted rows' windows
    o, h, low, c, v = (arrays.recent(name, arrays.rows + window) for name in _PRICES)
    if kind == "log_return":
        return _lagged(np.log(c), arrays, window)
    if kind == "realized_volatility":
        returns = _log_returns(arrays, arrays.rows + window)
        return _rolling_std(arrays.windows(returns, window))
    if kind in _PER_CANDLE:
        return _rolling_mean(arrays, _PER_CANDLE[kind](o, h, low, c, v), window)
    if kind == "log_volume_zscore":
        return _zscore(arrays, np.log1p(v), window)
    assert kind == "close_zscore", kind
    return _zscore(arrays, c, window)


def _sqrt_wick(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray) -> np.ndarray:
    log_body = np.abs(np.log(c / o))
    result: np.ndarray = np.sqrt(np.maximum(np.log(h / low) - log_body, 0.0))
    return result


# Per-candle values that are then averaged over the window (1: the value itself).
_Candle = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
_PER_CANDLE: dict[str, _Candle] = {
    "log_range": lambda o, h, low, c, v: np.log(h / low),
    "upper_wick": lambda o, h, low, c, v: (h - np.maximum(o, c)) / c,
    "lower_wick": lambda o, h, low, c, v: (np.minimum(o, c) - low) / c,
    "body": lambda o, h, low, c, v: np.log(c / o),
    "sqrt_wick": lambda o, h, low, c, v: _sqrt_wick(o, h, low, c),
    "log_volume": lambda o, h, low, c, v: np.log1p(v),
}


def _bollinger_position(close: np.ndarray, window: int) -> np.ndarray:
    upper, _, lower = talib.BBANDS(close, timeperiod=window, nbdevup=2.0, nbdevdn=2.0)
    width = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        position: np.ndarray = np.where(width > 0, (close - lower) / width, 0.5)
    position[np.isnan(upper)] = np.nan
    return position


def _bollinger_width(close: np.ndarray, window: int) -> np.ndarray:
    upper, middle, lower = talib.BBANDS(close, timeperiod=window, nbdevup=2.0, nbdevdn=2.0)
    width: np.ndarray = (upper - lower) / middle
    return width


# TA-Lib's recursive indicators: computed over every candle given, as the batch does.
_Indicator = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]
_TALIB: dict[str, _Indicator] = {
    "rsi": lambda o, h, low, c, v, w: talib.RSI(c, timeperiod=w),
    "natr": lambda o, h, low, c, v, w: talib.NATR(h, low, c, timeperiod=w),
    "adx": lambda o, h, low, c, v, w: talib.ADX(h, low, c, timeperiod=w),
    "mfi": lambda o, h, low, c, v, w: talib.MFI(h, low, c, v, timeperiod=w),
    "bollinger_width": lambda o, h, low, c, v, w: _bollinger_width(c, w),
    "bollinger_position": lambda o, h, low, c, v, w: _bollinger_position(c, w),
}

_SLOW_CLOCK = {
    "ewm_return": ind.ewm_return,
    "ewm_log_downside_deviation": ind.ewm_log_downside_deviation,
    "ewm_sortino": ind.ewm_sortino,
    "trend_distance": ind.trend_distance,
}


def _slow_clock(candles: pd.DataFrame, arrays: _Arrays, kind: str, halflife: float) -> np.ndarray:
    """The indicator over the candles its wanted rows depend on (its window, the first
    return, and one more so that every wanted row is a full-window value)."""
    needed = arrays.rows + ind.ewm_window(halflife) + 2
    close = candles["close"].iloc[max(0, arrays.size - needed) :]
    values: np.ndarray = _SLOW_CLOCK[kind](close, halflife).to_numpy()
    return values[len(values) - arrays.rows :]


def _check(candles: pd.DataFrame) -> None:
    """What :func:`features.candles.validate_candles` refuses and a live step can check
    cheaply: dates that do not ascend. Prices are taken as they are, as ``build`` does (a
    missing price gives NaN features near it, not an error for a thousand candles)."""
    stamps = candles["date"].to_numpy(dtype="datetime64[ns]").view("int64")
    bad = np.flatnonzero(np.diff(stamps) <= 0)
    if bad.size:
        raise DataError(
            "dates are not strictly ascending", path="candles", row=int(bad[0]) + 1, column="date"
        )


def build_tail(
    candles: pd.DataFrame,
    spec: FeatureSpec,
    timeframe: str | None,
    rows: int,
    references: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The last ``rows`` rows of ``build(candles, spec, timeframe, references)``: same
    columns, same index labels, same values (see the module docstring for how exactly)."""
    columns = tail_columns(candles, spec, timeframe, rows, references)
    rows = min(rows, len(candles))
    index = pd.RangeIndex(len(candles) - rows, len(candles))  # positions, as build() numbers rows
    # one float block, then the dates: a column-by-column frame costs more than the features
    frame = pd.DataFrame(
        np.column_stack(list(columns.values())), columns=list(columns), index=index
    )
    frame.insert(0, "date", candles["date"].array[len(candles) - rows :])
    return frame


def _reference_tail(
    candles: pd.DataFrame,
    spec: FeatureSpec,
    timeframe: str | None,
    rows: int,
    references: Mapping[str, pd.DataFrame] | None,
) -> dict[str, np.ndarray]:
    """The reference pairs' columns at the last ``rows`` candles, each from the same
    bounded history of the reference (its candles up to the last of ours)."""
    wanted = candles["date"].to_numpy(dtype="datetime64[ns]")[len(candles) - rows :]
    out: dict[str, np.ndarray] = {}
    for pair in spec.reference_pairs:
        other = reference(references, pair)
        dates = other["date"].to_numpy(dtype="datetime64[ns]")
        end = int(np.searchsorted(dates, wanted[-1], "right"))
        other = other.iloc[max(0, end - len(candles)) : end]
        dates = dates[max(0, end - len(candles)) : end]
        if not len(other):
            raise DataError(f"no candles of reference pair {pair} up to {wanted[-1]}")
        their_rows = len(other) - int(np.searchsorted(dates, wanted[0], "left"))
        values = tail_columns(other, spec.on_references, timeframe, max(1, their_rows))
        tail_dates = dates[len(dates) - max(1, their_rows) :]
        positions = np.minimum(np.searchsorted(tail_dates, wanted), len(tail_dates) - 1)
        same = tail_dates[positions] == wanted
        for name, column in values.items():
            out[f"{name}{reference_suffix(pair)}"] = np.where(same, column[positions], np.nan)
    return out


def tail_columns(
    candles: pd.DataFrame,
    spec: FeatureSpec,
    timeframe: str | None,
    rows: int,
    references: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, np.ndarray]:
    """:func:`build_tail`'s feature columns as arrays (no frame: the live step needs
    arrays, and building a frame of a few rows costs more than computing them)."""
    if rows < 1:
        raise ValueError(f"build_tail(): rows must be >= 1, got {rows}")
    rows = min(rows, len(candles))
    if spec.include_shifted_candles:
        return _with_shifted_tail(candles, spec, timeframe, rows, references)
    if spec.needs_timeframe and timeframe is None:
        raise ValueError(
            "build_tail(): timeframe is required for higher-timeframe and slow-clock features"
        )
    _check(candles)
    arrays = _Arrays(candles, rows)
    columns: dict[str, np.ndarray] = {}
    for feature in spec.features:
        if isinstance(feature, SlowClockFeature):
            assert timeframe is not None
            seconds = timeframe_to_seconds(timeframe)
            for days in feature.halflives_days:
                columns[f"%-{feature.kind}_{days:g}d"] = _slow_clock(
                    candles, arrays, feature.kind, days * 86_400 / seconds
                )
        elif isinstance(feature, MacdFeature):
            close = arrays["close"]
            _, _, hist = talib.MACD(
                close, fastperiod=feature.fast, slowperiod=feature.slow, signalperiod=feature.signal
            )
            name = f"%-macd_hist_{feature.fast}_{feature.slow}_{feature.signal}"
            columns[name] = arrays.last(hist / close)
        else:
            assert isinstance(feature, WindowedFeature)
            for window in feature.windows:
                columns[f"%-{feature.kind}_{window}"] = _windowed(arrays, feature.kind, window)
    if spec.higher_timeframes:
        assert timeframe is not None
        spec.check_timeframe(timeframe)
        for higher in spec.higher_timeframes:
            block = higher_timeframe_columns(candles, timeframe, higher)
            for name in block.columns:
                columns[name] = block[name].to_numpy(dtype="float64")[len(candles) - rows :]
    if spec.reference_pairs:
        columns.update(_reference_tail(candles, spec, timeframe, rows, references))
    return columns


def _with_shifted_tail(
    candles: pd.DataFrame,
    spec: FeatureSpec,
    timeframe: str | None,
    rows: int,
    references: Mapping[str, pd.DataFrame] | None,
) -> dict[str, np.ndarray]:
    """The last ``rows`` rows with FreqAI's shifted candles: the unshifted columns of the
    last ``rows + shifts`` rows, read at each shift (NaN before the first candle)."""
    shifts = spec.include_shifted_candles
    unshifted = spec.model_copy(update={"include_shifted_candles": 0})
    wider = tail_columns(candles, unshifted, timeframe, rows + shifts, references)
    columns: dict[str, np.ndarray] = {}
    padded: dict[str, np.ndarray] = {}
    for name, values in wider.items():
        missing = rows + shifts - len(values)  # fewer candles than the shifts reach back
        padded[name] = np.concatenate([np.full(missing, np.nan), values]) if missing else values
        columns[name] = padded[name][shifts:]
    for i in range(1, shifts + 1):
        for name, values in padded.items():
            columns[shifted_name(name, i)] = values[shifts - i : shifts - i + rows]
    return columns
