"""build_tail: the newest rows of the feature frame, as build() gives them."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pandas as pd
import pytest

from common.errors import DataError
from features.feature_spec import FeatureSpec, WindowedFeature, spec_with_higher_timeframe
from features.pipeline import build
from features.tail import build_tail

# Rolling means and standard deviations are summed per window here and by running sums in
# pandas: the same values up to rounding. Everything else must be the same bits.
ROUNDED = ("realized_volatility", "log_range_", "wick_", "log_volume_", "close_zscore", "body_")
RTOL, ATOL = 1e-9, 1e-12


def _every_kind() -> FeatureSpec:
    """Every windowed kind at a one-candle (where allowed) and a longer window, MACD, every
    slow-clock kind, a higher-timeframe block and a reference pair."""
    kinds = get_args(WindowedFeature.model_fields["kind"].annotation)
    one_candle = {"log_return", "log_range", "upper_wick", "lower_wick", "body", "sqrt_wick"}
    features: list[dict[str, object]] = [
        {"kind": kind, "windows": [1, 24] if kind in one_candle else [14, 48]} for kind in kinds
    ]
    features.append({"kind": "macd", "fast": 12, "slow": 26, "signal": 9})
    features += [
        {"kind": kind, "halflives_days": [0.5, 2]}
        for kind in ("ewm_return", "ewm_log_downside_deviation", "ewm_sortino", "trend_distance")
    ]
    spec = FeatureSpec.model_validate({"features": features, "reference_pairs": ["BTC/USDT"]})
    return spec_with_higher_timeframe(spec)


def _reference(candles: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A reference market on the same candle times, one candle missing."""
    from features.data.synthetic import generate

    other, _ = generate(len(candles), seed=5)
    other["date"] = candles["date"].to_numpy()
    return {"BTC/USDT": other.drop(index=[len(other) - 3]).reset_index(drop=True)}


def _compare(batch: pd.DataFrame, tail: pd.DataFrame) -> None:
    assert list(tail.columns) == list(batch.columns)
    assert list(tail.index) == list(batch.index)
    assert (tail["date"].to_numpy() == batch["date"].to_numpy()).all()
    for column in batch.columns[1:]:
        expected, got = batch[column].to_numpy(), tail[column].to_numpy()
        assert got.dtype == np.float64, column
        if any(part in column for part in ROUNDED):
            np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=column)
        else:
            assert np.array_equal(got, expected, equal_nan=True), column


@pytest.mark.parametrize("rows", [1, 4, 40])
def test_the_tail_is_the_batch_frames_last_rows(synthetic_candles: pd.DataFrame, rows: int) -> None:
    spec = _every_kind()
    candles = synthetic_candles.iloc[-1200:].reset_index(drop=True)  # a live step's bounded tail
    refs = _reference(candles)
    batch = build(candles, spec, "1h", refs).iloc[-rows:]
    _compare(batch, build_tail(candles, spec, "1h", rows, refs))


def test_warm_up_rows_are_nan_as_in_the_batch(synthetic_candles: pd.DataFrame) -> None:
    """A history shorter than the windows: the rows without a full window are NaN in both."""
    spec = _every_kind()
    candles = synthetic_candles.iloc[:60].reset_index(drop=True)
    refs = _reference(candles)
    batch = build(candles, spec, "1h", refs)
    tail = build_tail(candles, spec, "1h", 60, refs)
    assert tail.drop(columns="date").isna().any().any()  # the 48-candle windows are warming up
    _compare(batch, tail)
    _compare(batch, build_tail(candles, spec, "1h", 500, refs))  # clipped to those there are


def test_flat_stretches_give_the_batchs_zero_zscore(synthetic_candles: pd.DataFrame) -> None:
    """A window of equal values has std 0 and z-score 0, not a ratio of rounding errors."""
    candles = synthetic_candles.iloc[:400].reset_index(drop=True)
    candles.loc[300:, ["open", "high", "low", "close"]] = 101.37
    candles.loc[300:, "volume"] = 7.0
    spec = FeatureSpec.model_validate(
        {
            "features": [
                {"kind": "close_zscore", "windows": [24]},
                {"kind": "log_volume_zscore", "windows": [24]},
                {"kind": "realized_volatility", "windows": [24]},
            ]
        }
    )
    tail = build_tail(candles, spec, "1h", 50)
    assert (tail.drop(columns="date").iloc[-20:] == 0).all().all()
    _compare(build(candles, spec, "1h").iloc[-50:], tail)


def test_bad_candles_behave_as_in_build(synthetic_candles: pd.DataFrame) -> None:
    spec = _every_kind()
    candles = synthetic_candles.iloc[:300].reset_index(drop=True)
    refs = _reference(candles)
    broken = candles.copy()
    broken.loc[250, "low"] = np.nan  # a missing price: NaN features near it, as in build
    _compare(build(broken, spec, "1h", refs).iloc[-60:], build_tail(broken, spec, "1h", 60, refs))
    backwards = candles.copy()
    backwards["date"] = backwards["date"].where(backwards.index != 120, backwards["date"][118])
    with pytest.raises(DataError, match="ascending"):
        build_tail(backwards, spec, "1h", 1, refs)
    with pytest.raises(DataError, match="reference pair BTC/USDT"):
        build_tail(candles, spec, "1h", 1)
    with pytest.raises(DataError, match="reference pair BTC/USDT"):
        build(candles, spec, "1h")
    with pytest.raises(ValueError, match="timeframe"):
        build_tail(candles, spec, None, 1, refs)


@pytest.mark.parametrize("rows", [1, 3])
def test_the_tail_has_the_batch_frames_shifted_candles(
    synthetic_candles: pd.DataFrame, rows: int
) -> None:
    spec = _every_kind().model_copy(update={"include_shifted_candles": 3})
    candles = synthetic_candles.iloc[-1200:].reset_index(drop=True)
    refs = _reference(candles)
    _compare(
        build(candles, spec, "1h", refs).iloc[-rows:], build_tail(candles, spec, "1h", rows, refs)
    )
    # fewer candles than the shifts reach back: NaN, as in the batch frame
    short = candles.iloc[:2].reset_index(drop=True)
    plain = FeatureSpec.model_validate(
        {"features": [{"kind": "log_return", "windows": [1]}], "include_shifted_candles": 3}
    )
    _compare(build(short, plain).iloc[-rows:], build_tail(short, plain, None, rows))
