"""Volatility targeting (ml/sizing.py): the rule, its causality, and what it does to risk."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.metrics import long_flat
from ml.sizing import held_exposure, rebalance_due, vol_target_exposure
from ml.volatility import trailing_log_volatility
from tests.ml.test_volatility import HOURLY, garch_closes


def _dates(n: int, hours: int = 12) -> pd.Series:
    return pd.Series(pd.date_range("2024-01-01", periods=n, freq=f"{hours}h", tz="UTC"))


def test_the_rule_scales_holds_within_the_band_and_follows_decisions_at_once() -> None:
    exposure = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    forecast = np.array([0.8, 0.4, 0.4, 0.4, 0.4, 0.4, 0.85, 0.4, 0.4])
    sized = vol_target_exposure(exposure, forecast, _dates(9), 0.4, band=0.1)
    # t0: 0.5; t1 is half a day after sizing: no rebalance yet; t2 (a day): 1.0; t4: the
    # decision to go flat acts at once; t6: back in at 0.47; t7 is half a day later: held
    np.testing.assert_allclose(sized, [0.5, 0.5, 1.0, 1.0, 0.0, 0.0, 0.4 / 0.85, 0.4 / 0.85, 1.0])
    within = vol_target_exposure(np.ones(4), np.array([0.8, 0.8, 0.75, 0.75]), _dates(4), 0.4)
    np.testing.assert_allclose(within, [0.5, 0.5, 0.5, 0.5])  # 0.53 is inside the band
    capped = vol_target_exposure(np.ones(2), np.array([0.1, np.nan]), _dates(2, 24), 0.4)
    np.testing.assert_allclose(capped, [1.0, 1.0])  # at most the cap; no forecast: unsized


def test_the_strategy_and_the_simulation_share_one_rule() -> None:
    assert rebalance_due(0.5, 1.0, True, 0.0, 0.1)  # a decision acts at once
    assert not rebalance_due(0.5, 1.0, False, 0.9, 0.1)  # not yet a day
    assert rebalance_due(0.5, 1.0, False, 1.0, 0.1)
    assert not rebalance_due(0.95, 1.0, False, 3.0, 0.1)  # inside the band
    held = held_exposure(np.array([0.5, 0.5]), np.ones(2), _dates(2), band=0.1)
    np.testing.assert_allclose(held, [0.5, 0.5])  # entering is a decision: sized at once


def test_sizing_is_causal() -> None:
    close = garch_closes(24 * 200)
    dates = pd.Series(pd.date_range("2024-01-01", periods=len(close), freq="1h", tz="UTC"))
    forecast = np.exp(trailing_log_volatility(close, 168, HOURLY))
    exposure = (np.arange(len(close)) // 500 % 2).astype("float64")
    cut = 24 * 120 + 5
    full = vol_target_exposure(exposure, forecast, dates, 0.5)
    prefix = vol_target_exposure(exposure[:cut], forecast[:cut], dates[:cut], 0.5)
    np.testing.assert_array_equal(full[:cut], prefix)


def test_holding_by_forecast_risk_cuts_the_drawdown_of_a_clustered_market() -> None:
    close = garch_closes(24 * 400, seed=8)
    dates = pd.Series(pd.date_range("2024-01-01", periods=len(close), freq="1h", tz="UTC"))
    returns = np.r_[np.nan, np.diff(np.log(close))]
    forecast = np.exp(trailing_log_volatility(close, 168, HOURLY))
    target = float(np.nanmedian(forecast))  # a budget at the market's typical risk
    sized = vol_target_exposure(np.ones(len(close)), forecast, dates, target)
    hold = long_flat(np.ones(len(close)), returns, periods_per_year=HOURLY)
    targeted = long_flat(sized, returns, periods_per_year=HOURLY)
    assert targeted["max_drawdown"] < hold["max_drawdown"]
    assert targeted["changes_per_year"] < 365  # at most daily rebalances, fewer with the band
