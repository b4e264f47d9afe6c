"""Volatility targeting (ml/sizing.py): the rule, its causality, and what it does to risk."""

from __future__ import annotations

import numpy as np

from ml.metrics import long_flat
from ml.sizing import past_median_volatility, vol_target_exposure
from ml.volatility import trailing_log_volatility
from tests.ml.test_volatility import HOURLY, garch_closes


def test_the_rule_scales_holds_within_the_band_and_follows_decisions_at_once() -> None:
    exposure = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    forecast = np.array([0.8, 0.8, 0.4, 0.4, 0.4, 0.4, 0.85, 0.85])
    sized = vol_target_exposure(exposure, forecast, 0.4, candles_per_day=2, band=0.1)
    # t0: 0.5; t2 (a rebalance): 1.0; t4: the decision to go flat acts at once; t6: back
    # in at 0.47; t7 is no rebalance candle
    np.testing.assert_allclose(sized, [0.5, 0.5, 1.0, 1.0, 0.0, 0.0, 0.4 / 0.85, 0.4 / 0.85])
    within = vol_target_exposure(
        np.ones(4), np.array([0.8, 0.8, 0.75, 0.75]), 0.4, candles_per_day=2, band=0.1
    )
    np.testing.assert_allclose(within, [0.5, 0.5, 0.5, 0.5])  # 0.53 is inside the band
    capped = vol_target_exposure(np.ones(2), np.array([0.1, np.nan]), 0.4, candles_per_day=1)
    np.testing.assert_allclose(capped, [1.0, 1.0])  # at most the cap; no forecast: unsized


def test_sizing_is_causal() -> None:
    close = garch_closes(24 * 200)
    forecast = np.exp(trailing_log_volatility(close, 168, HOURLY))
    target = past_median_volatility(close, HOURLY, 24.0)
    exposure = (np.arange(len(close)) // 500 % 2).astype("float64")
    cut = 24 * 120 + 5
    full = vol_target_exposure(exposure, forecast, target, candles_per_day=24.0)
    prefix = vol_target_exposure(exposure[:cut], forecast[:cut], target[:cut], candles_per_day=24.0)
    np.testing.assert_array_equal(full[:cut], prefix)
    np.testing.assert_array_equal(target[:cut], past_median_volatility(close[:cut], HOURLY, 24.0))


def test_holding_by_forecast_risk_cuts_the_drawdown_of_a_clustered_market() -> None:
    close = garch_closes(24 * 400, seed=8)
    returns = np.r_[np.nan, np.diff(np.log(close))]
    forecast = np.exp(trailing_log_volatility(close, 168, HOURLY))
    target = past_median_volatility(close, HOURLY, 24.0)
    sized = vol_target_exposure(np.ones(len(close)), forecast, target, candles_per_day=24.0)
    hold = long_flat(np.ones(len(close)), returns, periods_per_year=HOURLY)
    targeted = long_flat(sized, returns, periods_per_year=HOURLY)
    assert targeted["max_drawdown"] < hold["max_drawdown"]
    assert targeted["changes_per_year"] < 365  # at most daily rebalances, fewer with the band
