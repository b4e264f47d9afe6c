"""Regime allocation, the daily trend baselines and the long/flat simulation with
partial exposure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.causality import assert_prefix_invariant
from features.data.synthetic import generate
from ml.baselines import trend_positions
from ml.metrics import long_flat
from ml.models.allocation import RegimeAllocator


def test_allocation_maps_regime_probabilities_to_exposure() -> None:
    frame = pd.DataFrame(
        {
            "%-x": [0.1, 0.2, 0.3, 0.4],
            "p_bear": [np.nan, 1.0, 0.4, 0.0],
            "p_bull": [np.nan, 0.0, 0.6, 1.0],
        }
    )
    model = RegimeAllocator().fit(frame, None)  # the most probable regime's exposure
    np.testing.assert_array_equal(model.exposure(frame), [np.nan, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(model.predict(frame), [np.nan, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(model.predict_proba(frame)[:, 1], [np.nan, 0.0, 1.0, 1.0])
    blend = RegimeAllocator(mode="blend").fit(frame, None)
    np.testing.assert_array_equal(blend.exposure(frame), [np.nan, 0.0, 0.6, 1.0])
    half = RegimeAllocator(exposures={"bull": 0.5}).fit(frame, None)
    assert half.exposure(frame)[3] == 0.5
    tie = pd.DataFrame({"p_bear": [0.5], "p_bull": [0.5]})
    assert RegimeAllocator().fit(tie, None).exposure(tie)[0] == 1.0  # as the jump vote decides
    with pytest.raises(ValueError, match="needs regime probabilities"):
        RegimeAllocator().fit(frame[["%-x"]], None)
    with pytest.raises(ValueError, match=r"exposures must lie in \[0, 1\]"):
        RegimeAllocator(exposures={"bull": 2.0}).fit(frame, None)


def _hourly(n: int = 24 * 120, seed: int = 8) -> pd.DataFrame:
    candles, _ = generate(n, seed=seed)
    return candles


def test_trend_rules_use_completed_daily_closes_only() -> None:
    candles = _hourly()

    def rules(part: pd.DataFrame) -> pd.DataFrame:
        positions = trend_positions(part, "1h")
        return pd.DataFrame({"date": part["date"], **positions})

    ends = [24 * 80 + k for k in range(25)]
    assert_prefix_invariant(rules, candles, prefixes=ends)
    positions = trend_positions(candles, "1h")
    daily = candles.set_index("date")["close"].resample("1D").last()
    sma = (daily > daily.rolling(50).mean()).astype(float)
    momentum = (daily > daily.shift(30)).astype(float)
    hours = candles["date"].dt.hour.to_numpy()
    for row in np.flatnonzero(hours == 23)[60:70]:  # the day's close is complete at 23:00
        day = candles["date"].iloc[row].floor("1D")
        assert positions["sma50_daily"][row] == sma[day]
        assert positions["momentum_30d"][row] == momentum[day]
        assert positions["sma50_daily"][row - 1] == sma[day - pd.Timedelta(days=1)]
    assert (positions["sma50_daily"][: 24 * 49] == 0).all()  # warm-up: flat


def test_trend_rules_on_daily_candles() -> None:
    candles = _hourly()
    daily = (
        candles.set_index("date")
        .resample("1D")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .reset_index()
    )
    positions = trend_positions(daily, "1d")
    close = daily["close"]
    np.testing.assert_array_equal(
        positions["momentum_30d"], (close > close.shift(30)).astype(float).to_numpy()
    )


def test_partial_exposure_earns_its_share_and_pays_fees_on_changes() -> None:
    returns = np.log(np.array([1.0, 1.1, 0.9, 1.2, 1.0]))
    full = long_flat(np.ones(5), returns, fee=0.0, periods_per_year=1)
    half = long_flat(np.full(5, 0.5), returns, fee=0.0, periods_per_year=1)
    # equity of a half stake: product of (1 + 0.5 * simple return) over the held candles
    expected = np.log(np.prod(1 + 0.5 * (np.array([1.1, 0.9, 1.2]) - 1)))
    assert half["total_log_return"] == pytest.approx(expected)
    assert full["total_log_return"] == pytest.approx(np.log(1.1 * 0.9 * 1.2))
    costly = long_flat(np.array([0.0, 0.5, 0.5, 1.0, 1.0]), returns, fee=0.01, periods_per_year=1)
    free = long_flat(np.array([0.0, 0.5, 0.5, 1.0, 1.0]), returns, fee=0.0, periods_per_year=1)
    assert free["total_log_return"] - costly["total_log_return"] == pytest.approx(
        -2 * np.log1p(-0.005)
    )
    assert costly["position_changes"] == 2
    assert full["calmar"] == pytest.approx(full["cagr"] / full["max_drawdown"])


def test_a_trend_gate_holds_the_regime_exposure_only_above_the_trend() -> None:
    frame = pd.DataFrame(
        {
            "%-close_zscore_50_1d": [np.nan, 0.5, -0.1, 0.2, 0.3],
            "p_bear": [0.0, 0.0, 0.0, 1.0, 0.2],
            "p_bull": [1.0, 1.0, 1.0, 0.0, 0.8],
        }
    )
    model = RegimeAllocator(trend_column="%-close_zscore_50_1d").fit(frame, None)
    np.testing.assert_array_equal(model.exposure(frame), [np.nan, 1.0, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="is not a feature of the spec"):
        RegimeAllocator(trend_column="%-nope").fit(frame, None)


def test_the_rules_sized_by_risk_are_causal_and_hold_less_when_risk_is_high() -> None:
    from ml.baselines import SIZED_RULES, rule_positions

    candles = _hourly(24 * 200, seed=9)

    def rules(part: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"date": part["date"], **rule_positions(part, "1h")})

    assert_prefix_invariant(rules, candles, prefixes=[24 * 150 + k for k in (0, 7, 23)])
    positions = rule_positions(candles, "1h")
    assert set(SIZED_RULES) <= set(positions)
    sized, sma = positions["sma50_sized"], positions["sma50_daily"]
    assert ((sized <= sma + 1e-12) & (sized >= 0)).all()  # cap 1: never more than the rule
    assert (positions["always_long_sized"] < 1).any()  # risk above its norm: holds less
