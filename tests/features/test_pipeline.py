"""The feature frame: names, values, warm-up, spec validation and hashing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from common.errors import SpecError
from features import indicators as ind
from features.feature_spec import (
    FeatureSpec,
    default_spec,
    load_spec,
    parse_spec,
    spec_with_higher_timeframe,
)
from features.pipeline import build, feature_columns, first_valid_row


def test_frame_shape_and_freqai_names(synthetic_candles: pd.DataFrame) -> None:
    frame = build(synthetic_candles, default_spec())
    assert frame.columns[0] == "date"
    assert all(c.startswith("%-") for c in frame.columns[1:])
    assert "%-rsi_14" in frame.columns and "%-macd_hist_12_26_9" in frame.columns
    assert len(frame) == len(synthetic_candles)
    assert (frame.drop(columns="date").dtypes == "float64").all()
    htf = build(synthetic_candles, spec_with_higher_timeframe(default_spec()), "1h")
    assert "%-rsi_14_4h" in htf.columns


def test_hand_written_indicators_match_direct_formulas(synthetic_candles: pd.DataFrame) -> None:
    c = synthetic_candles
    close = c["close"].to_numpy()
    assert ind.log_return(c["close"], 4).iloc[100] == pytest.approx(np.log(close[100] / close[96]))
    returns = np.diff(np.log(close))
    assert ind.realized_volatility(c["close"], 24).iloc[100] == pytest.approx(
        np.std(returns[76:100], ddof=1)
    )
    window = close[77:101]
    assert ind.close_zscore(c["close"], 24).iloc[100] == pytest.approx(
        (close[100] - window.mean()) / window.std(ddof=1)
    )
    top = max(c["open"].iloc[5], c["close"].iloc[5])
    assert ind.upper_wick(c).iloc[5] == pytest.approx(
        (c["high"].iloc[5] - top) / c["close"].iloc[5]
    )
    # TA-Lib is used as is.
    assert np.array_equal(ind.rsi(c["close"], 14).to_numpy(), talib.RSI(close, 14), equal_nan=True)


def test_zscore_of_a_constant_window_is_zero_not_inf() -> None:
    values = pd.Series([1.0] * 10 + [2.0])
    z = ind.rolling_zscore(values, 5)
    assert z.iloc[4:10].eq(0).all()
    assert np.isfinite(z.iloc[10])


def test_warmup_is_reported_and_never_backfilled(synthetic_candles: pd.DataFrame) -> None:
    frame = build(synthetic_candles, default_spec())
    first = first_valid_row(frame)
    assert first == 168  # the longest window: 168-candle realised volatility and volume z-score
    assert frame.iloc[:first][feature_columns(frame)].isna().any(axis=1).all()
    assert np.isfinite(frame.iloc[first:][feature_columns(frame)].to_numpy()).all()
    assert first_valid_row(build(synthetic_candles.iloc[:100], default_spec())) is None


def test_spec_hash_is_stable_and_sensitive() -> None:
    spec = default_spec()
    assert spec.hash == default_spec().hash
    assert len(spec.hash) == 16
    changed = spec.model_copy(update={"features": (*spec.features[:-1],)})
    assert changed.hash != spec.hash
    assert spec_with_higher_timeframe(spec).hash != spec.hash


def test_spec_rejects_typos_and_bad_windows() -> None:
    with pytest.raises(
        SpecError, match=r"features\[0\]\.rsi\.windws: Extra inputs are not permitted"
    ):
        parse_spec({"features": [{"kind": "rsi", "windws": [14]}]})
    with pytest.raises(SpecError, match="windows must be >= 2"):
        parse_spec({"features": [{"kind": "rsi", "windows": [1]}]})
    with pytest.raises(SpecError, match="'rsx'"):
        parse_spec({"features": [{"kind": "rsx", "windows": [14]}]})
    with pytest.raises(SpecError, match="not a multiple"):
        spec = parse_spec(
            {
                "features": [{"kind": "rsi", "windows": [14]}],
                "higher_timeframes": [
                    {"timeframe": "30m", "features": [{"kind": "rsi", "windows": [14]}]}
                ],
            }
        )
        spec.check_timeframe("1h")


def test_spec_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(
        '[[features]]\nkind = "log_return"\nwindows = [1, 4]\n\n'
        '[[features]]\nkind = "macd"\nfast = 6\nslow = 13\nsignal = 5\n\n'
        '[[higher_timeframes]]\ntimeframe = "4h"\nfeatures = [{ kind = "rsi", windows = [14] }]\n'
    )
    spec = load_spec(path)
    assert isinstance(spec, FeatureSpec)
    assert spec.higher_timeframes[0].timeframe == "4h"
    broken = tmp_path / "broken.toml"
    broken.write_text("[[features]\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(broken)


@pytest.mark.parametrize("unit", ["ms", "ns"])
def test_build_leaves_the_callers_frame_untouched(
    synthetic_candles: pd.DataFrame, unit: str
) -> None:
    # Freqtrade's layout (date in ms) and ours: the canonical-layout fast path copies lazily
    candles = synthetic_candles.iloc[:500].reset_index(drop=True)
    candles["date"] = candles["date"].astype(f"datetime64[{unit}, UTC]")
    candles["volume"] = candles["volume"].round().astype("int64")
    before = candles.copy()
    frame = build(candles, default_spec())
    frame.loc[:, "date"] = frame["date"].iloc[0]  # writing to the result must not reach the input
    pd.testing.assert_frame_equal(candles, before)
    expected = build(
        before.astype({"date": "datetime64[ns, UTC]", "volume": "float64"}), default_spec()
    )
    pd.testing.assert_frame_equal(build(candles, default_spec()), expected)


def test_slow_clock_half_lives_are_days_on_any_timeframe(synthetic_candles: pd.DataFrame) -> None:
    """The same half-life in days on hourly candles and on daily closes resampled causally."""
    from features import indicators as ind
    from features.feature_spec import FeatureSpec, slow_clock_spec
    from features.pipeline import resample

    spec = FeatureSpec.model_validate(
        {"features": [{"kind": "ewm_return", "halflives_days": [2, 0.5]}]}
    )
    frame = build(synthetic_candles, spec, "1h")
    assert list(frame.columns) == ["date", "%-ewm_return_2d", "%-ewm_return_0.5d"]
    returns = np.log(synthetic_candles["close"]).diff().to_numpy()
    window = ind.ewm_window(48.0)  # 2 days of hourly candles, eight half-lives
    assert window == 8 * 48
    weights = 0.5 ** (np.arange(window) / 48.0)
    row = 2000
    expected = (returns[row - window + 1 : row + 1][::-1] * weights).sum() / weights.sum()
    assert frame["%-ewm_return_2d"].iloc[row] == pytest.approx(expected, rel=1e-12)
    # warm-up: one half-life of returns; before a full window, pandas' adjusted EWM
    assert frame["%-ewm_return_2d"].iloc[:48].isna().all()
    assert frame["%-ewm_return_2d"].iloc[48:].notna().all()
    pandas_ewm = pd.Series(returns).ewm(halflife=48.0, min_periods=48).mean().to_numpy()
    np.testing.assert_allclose(
        frame["%-ewm_return_2d"].to_numpy()[: window - 1], pandas_ewm[: window - 1], rtol=1e-12
    )
    # the value depends on the last `window` candles only: the same on a bounded tail
    tail = build(synthetic_candles.iloc[row - window : row + 1].reset_index(drop=True), spec, "1h")
    assert tail["%-ewm_return_2d"].iloc[-1] == frame["%-ewm_return_2d"].iloc[row]
    assert spec.lookback_candles("1h") == window + 2

    daily = build(synthetic_candles, slow_clock_spec((5,)), "1h")
    coarse = resample(synthetic_candles, "1h", "1d")
    on_days = ind.ewm_return(coarse["close"], 5.0)
    # the value of a day appears from its last hour on, and stays for the next 24 hours
    last_hours = np.flatnonzero(synthetic_candles["date"].dt.hour.to_numpy() == 23)
    for row in last_hours[60:65]:
        day = int(np.flatnonzero(coarse["available_at"] == synthetic_candles["date"].iloc[row])[0])
        assert np.isfinite(on_days.iloc[day])
        assert daily["%-ewm_return_5d_1d"].iloc[row] == on_days.iloc[day]
    with pytest.raises(ValueError, match="timeframe is required"):
        build(synthetic_candles, spec)
