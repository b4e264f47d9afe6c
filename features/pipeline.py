"""The feature pipeline: ``build(candles, spec) -> DataFrame``.

Used identically in training, backtests and live. Output: the ``date`` column
plus one float64 column per feature, named FreqAI-style ``%-<kind>_<window>``
(``%-<kind>_<window>_<tf>`` for higher-timeframe features), one row per input
candle, index aligned with the input. Warm-up rows hold NaN; nothing is
back-filled (see :func:`first_valid_row`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from common.errors import DataError
from features import indicators as ind
from features.candles import validate_candles
from features.feature_spec import (
    Feature,
    FeatureSpec,
    HigherTimeframe,
    MacdFeature,
    SlowClockFeature,
    WindowedFeature,
    reference_suffix,
)
from features.timeframes import grid_offset_seconds, timeframe_to_seconds

_WINDOWED: dict[str, Callable[[ind.Candles, int], pd.Series]] = {
    "log_return": lambda c, w: ind.log_return(c["close"], w),
    "realized_volatility": lambda c, w: ind.realized_volatility(c["close"], w),
    "log_range": lambda c, w: ind.log_range(c["high"], c["low"], w),
    "upper_wick": ind.upper_wick,
    "lower_wick": ind.lower_wick,
    "body": ind.body,
    "sqrt_wick": ind.sqrt_wick,
    "log_volume": lambda c, w: ind.log_volume(c["volume"], w),
    "log_volume_zscore": lambda c, w: ind.log_volume_zscore(c["volume"], w),
    "close_zscore": lambda c, w: ind.close_zscore(c["close"], w),
    "rsi": lambda c, w: ind.rsi(c["close"], w),
    "natr": ind.natr,
    "adx": ind.adx,
    "mfi": ind.mfi,
    "bollinger_width": lambda c, w: ind.bollinger_width(c["close"], w),
    "bollinger_position": lambda c, w: ind.bollinger_position(c["close"], w),
}


_SLOW_CLOCK: dict[str, Callable[[pd.Series, float], pd.Series]] = {
    "ewm_return": ind.ewm_return,
    "ewm_log_downside_deviation": ind.ewm_log_downside_deviation,
    "ewm_sortino": ind.ewm_sortino,
    "trend_distance": ind.trend_distance,
}


def _days_label(days: float) -> str:
    return f"{days:g}d"


def _compute(
    frame: pd.DataFrame,
    features: tuple[Feature, ...],
    suffix: str,
    candle_seconds: int | None = None,
) -> dict[str, pd.Series]:
    """Feature columns of ``frame``; ``candle_seconds`` converts slow-clock half-lives
    from days to candles (required when there are any)."""
    candles = ind.Columns(frame)
    columns: dict[str, pd.Series] = {}
    for feature in features:
        if isinstance(feature, SlowClockFeature):
            if candle_seconds is None:
                raise ValueError("build(): timeframe is required for slow-clock features")
            compute_slow = _SLOW_CLOCK[feature.kind]
            for days in feature.halflives_days:
                name = f"%-{feature.kind}_{_days_label(days)}{suffix}"
                columns[name] = compute_slow(candles["close"], days * 86_400 / candle_seconds)
            continue
        if isinstance(feature, MacdFeature):
            name = f"%-macd_hist_{feature.fast}_{feature.slow}_{feature.signal}{suffix}"
            columns[name] = ind.macd_histogram(
                candles["close"], feature.fast, feature.slow, feature.signal
            )
            continue
        assert isinstance(feature, WindowedFeature)
        compute = _WINDOWED[feature.kind]
        for window in feature.windows:
            columns[f"%-{feature.kind}_{window}{suffix}"] = compute(candles, window)
    return columns


def resample(candles: pd.DataFrame, timeframe: str, higher: str) -> pd.DataFrame:
    """Aggregate ``timeframe`` candles into ``higher`` candles.

    Returns ``date`` (the higher candle's open time), OHLCV and ``available_at``:
    the open time of the last base candle the higher candle can contain. A higher
    candle is complete when that base candle has closed, so its values may be used
    from the row dated ``available_at`` on, and never earlier.
    """
    base = timeframe_to_seconds(timeframe)
    step = timeframe_to_seconds(higher)
    offset = grid_offset_seconds(higher)
    seconds = candles["date"].to_numpy(dtype="datetime64[s]").view("int64")
    bucket = (seconds - offset) // step * step + offset
    grouped = candles.groupby(bucket, sort=True)
    out = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
        }
    )
    starts = out.index.to_numpy(dtype="int64")
    out.insert(0, "date", pd.to_datetime(starts, unit="s", utc=True).astype("datetime64[ns, UTC]"))
    out["available_at"] = pd.to_datetime(starts + step - base, unit="s", utc=True).astype(
        "datetime64[ns, UTC]"
    )
    return out.reset_index(drop=True)


def higher_timeframe_columns(
    candles: pd.DataFrame, timeframe: str, higher: HigherTimeframe
) -> pd.DataFrame:
    """The ``higher`` block's columns, one row per candle, each row holding the values of
    the last higher candle complete at it (index: positions 0..n-1)."""
    coarse = resample(candles, timeframe, higher.timeframe)
    values = pd.DataFrame(
        _compute(
            coarse,
            higher.features,
            f"_{higher.timeframe}",
            timeframe_to_seconds(higher.timeframe),
        )
    )
    values["available_at"] = coarse["available_at"].to_numpy()
    merged = pd.merge_asof(
        candles[["date"]],
        values.sort_values("available_at"),
        left_on="date",
        right_on="available_at",
        direction="backward",
    )
    return merged.drop(columns=["date", "available_at"])


def reference(references: Mapping[str, pd.DataFrame] | None, pair: str) -> pd.DataFrame:
    """The candles of reference pair ``pair``, or a :class:`DataError` saying they are
    missing and how to get them."""
    if references is None or pair not in references:
        raise DataError(
            f"the feature spec needs the candles of reference pair {pair}",
            hint=f"import {pair} for this timeframe (tradingbot data import ...)",
        )
    return references[pair]


def reference_columns(
    candles: pd.DataFrame,
    spec: FeatureSpec,
    timeframe: str | None,
    references: Mapping[str, pd.DataFrame] | None,
) -> pd.DataFrame:
    """The spec's reference pairs' features (``<name>_ref_<BASE>_<QUOTE>``), one row per
    candle of ``candles``: the reference's values at the same candle time (NaN where it
    has no such candle), so nothing of a later candle enters a row."""
    dates = candles["date"].to_numpy(dtype="datetime64[ns]")
    out: dict[str, np.ndarray] = {}
    for pair in spec.reference_pairs:
        other = validate_candles(reference(references, pair), source=f"reference pair {pair}")
        if other.empty:
            raise DataError(f"no candles of reference pair {pair}")
        values = build(other, spec.on_references, timeframe)
        positions = np.searchsorted(other["date"].to_numpy(dtype="datetime64[ns]"), dates)
        positions = np.minimum(positions, len(other) - 1)
        same = other["date"].to_numpy(dtype="datetime64[ns]")[positions] == dates
        for name in feature_columns(values):
            column = values[name].to_numpy(dtype="float64")[positions]
            out[f"{name}{reference_suffix(pair)}"] = np.where(same, column, np.nan)
    return pd.DataFrame(out, index=candles.index)


def build(
    candles: pd.DataFrame,
    spec: FeatureSpec,
    timeframe: str | None = None,
    references: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The feature frame of ``candles`` (see the module docstring for its shape).

    ``timeframe`` is required when the spec has higher-timeframe features;
    ``references`` (pair -> candles of the same timeframe) when it has reference pairs.
    """
    candles = validate_candles(candles)
    if spec.needs_timeframe and timeframe is None:
        raise ValueError(
            "build(): timeframe is required for higher-timeframe and slow-clock features"
        )
    columns = _compute(
        candles, spec.features, "", timeframe_to_seconds(timeframe) if timeframe else None
    )
    # every column is already aligned with the candles: hand over arrays, skip re-alignment
    frame = pd.DataFrame(
        {
            "date": candles["date"].array,
            **{name: values.to_numpy() for name, values in columns.items()},
        },
        index=candles.index,
    )
    if spec.higher_timeframes:
        if timeframe is None:
            raise ValueError("build(): timeframe is required for higher-timeframe features")
        spec.check_timeframe(timeframe)
        for higher in spec.higher_timeframes:
            htf = higher_timeframe_columns(candles, timeframe, higher)
            htf.index = frame.index
            frame = pd.concat([frame, htf], axis=1)
    if spec.reference_pairs:
        joined = reference_columns(candles, spec, timeframe, references)
        frame = pd.concat([frame, joined.set_axis(frame.index)], axis=1)
    not_float = [str(c) for c, dtype in frame.dtypes.items() if c != "date" and dtype != "float64"]
    if not_float:
        frame[not_float] = frame[not_float].astype("float64")
    if spec.include_shifted_candles:
        frame = with_shifted_candles(frame, spec.include_shifted_candles)
    return frame


def shifted_name(column: str, candles_before: int) -> str:
    """FreqAI's name of a feature as it was ``candles_before`` candles earlier."""
    return f"{column}_shift-{candles_before}"


def with_shifted_candles(frame: pd.DataFrame, shifts: int) -> pd.DataFrame:
    """``frame`` and, for each of 1..``shifts``, every feature column as it was that many
    candles before (NaN before the first candle): FreqAI's ``include_shifted_candles``."""
    names = feature_columns(frame)
    shifted = [
        frame[names].shift(i).set_axis([shifted_name(c, i) for c in names], axis=1)
        for i in range(1, shifts + 1)
    ]
    return pd.concat([frame, *shifted], axis=1)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("%-")]


def first_valid_row(frame: pd.DataFrame) -> int | None:
    """Index position of the first row with every feature finite (after warm-up).

    ``None`` when no row is complete (too few candles for the longest window).
    """
    values = frame[feature_columns(frame)].to_numpy()
    complete = np.isfinite(values).all(axis=1)
    hits = np.flatnonzero(complete)
    return int(hits[0]) if hits.size else None
