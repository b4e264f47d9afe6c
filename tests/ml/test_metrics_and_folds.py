"""Walk-forward folds, targets and metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.metrics import baseline_positions, classification_metrics, long_flat, regression_metrics
from ml.targets import TargetSpec, forward_log_return, make_target
from ml.walkforward import WalkForwardSpec, make_folds


@pytest.mark.parametrize("scheme", ["expanding", "rolling"])
def test_folds_are_ordered_with_an_embargo(scheme: str) -> None:
    folds = make_folds(1000, WalkForwardSpec(scheme=scheme, folds=4, test_size=100), horizon=6)  # type: ignore[arg-type]
    assert [f.test_start for f in folds] == [600, 700, 800, 900]
    for fold in folds:
        assert fold.test_start - fold.train_end >= 6  # embargo >= horizon
        assert fold.train_end <= fold.test_start
        if scheme == "expanding":
            assert fold.train_start == 0
        else:
            assert fold.train_end - fold.train_start == folds[0].train_end
    with pytest.raises(ValueError, match="too few"):
        make_folds(200, WalkForwardSpec(folds=4, test_size=50), horizon=1)


def test_embargo_keeps_training_targets_out_of_the_test_window() -> None:
    close = pd.Series(np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 1000))))
    horizon = 5
    target = forward_log_return(close, horizon)
    for fold in make_folds(1000, WalkForwardSpec(folds=3, test_size=100), horizon=horizon):
        # the last training target looks at candle train_end - 1 + horizon, still before the test block
        assert fold.train_end - 1 + horizon < fold.test_start
        assert np.isfinite(target.iloc[fold.train_end - 1])


def test_targets() -> None:
    candles = pd.DataFrame({"close": [100.0, 110.0, 99.0, 99.0]})
    ret = make_target(candles, TargetSpec(kind="return", horizon=1)).to_numpy()
    np.testing.assert_allclose(ret[:3], np.log([1.1, 0.9, 1.0]))
    assert np.isnan(ret[3])
    direction = make_target(candles, TargetSpec(kind="direction", horizon=2)).to_numpy()
    assert direction[:2].tolist() == [0.0, 0.0] and np.isnan(direction[2:]).all()


def test_classification_metrics() -> None:
    y = np.array([1.0, 0.0, 1.0, np.nan])
    p = np.array([0.9, 0.2, 0.4, 0.5])
    m = classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.36) / 3)
    assert m["log_loss"] == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3)


def test_regression_metrics() -> None:
    y = np.array([0.01, -0.02, 0.03, 0.0])
    m = regression_metrics(y, y * 2)
    assert m["rank_ic"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(np.sqrt((y**2).mean()))


def test_long_flat_simulation_charges_fees_per_side() -> None:
    returns = np.array([np.nan, 0.01, 0.02, -0.01, 0.03])
    # decide at t, earn returns[t+1]: long at t=0..1 earns 0.01 + 0.02, then flat
    positions = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    result = long_flat(positions, returns, fee=0.001, periods_per_year=1)
    assert result["total_log_return"] == pytest.approx(0.03 + 2 * np.log1p(-0.001))
    assert result["trades"] == 1
    assert result["exposure"] == pytest.approx(2 / 4)
    free = long_flat(positions, returns, fee=0.0)
    assert free["total_log_return"] == pytest.approx(0.03)
    always = long_flat(baseline_positions(returns)["always_long"], returns, fee=0.0)
    assert always["total_log_return"] == pytest.approx(0.05)
    assert always["max_drawdown"] == pytest.approx(1 - np.exp(-0.01))


def test_test_blocks_in_days_follow_the_timeframe() -> None:
    spec = WalkForwardSpec(folds=4, test_days=10)
    hourly = make_folds(2000, spec, horizon=1, candles_per_day=24)
    daily = make_folds(200, spec, horizon=1, candles_per_day=1)
    assert [f.test_end - f.test_start for f in hourly] == [240] * 4
    assert [f.test_end - f.test_start for f in daily] == [10] * 4
    with pytest.raises(ValueError, match="needs the candles' timeframe"):
        make_folds(2000, spec, horizon=1)
    with pytest.raises(ValueError, match="not both"):
        make_folds(2000, WalkForwardSpec(folds=4, test_days=10, test_size=100), horizon=1)


def test_calendar_blocks_do_not_depend_on_where_the_data_ends() -> None:
    dates = pd.date_range("2020-01-01", periods=24 * 100, freq="1h").to_numpy()
    spec = WalkForwardSpec(start="20200201", folds=5, test_days=10)
    full = make_folds(len(dates), spec, horizon=24, candles_per_day=24, dates=dates)
    assert [f.test_start for f in full] == [24 * (31 + 10 * i) for i in range(5)]
    assert all(f.train_end == f.test_start - 24 for f in full)
    cut = 24 * 55 + 7  # the data ends inside the third block
    part = make_folds(cut, spec, horizon=24, candles_per_day=24, dates=dates[:cut])
    assert [(f.train_end, f.test_start) for f in part] == [
        (f.train_end, f.test_start) for f in full[:3]
    ]
    assert part[-1].test_end == cut
    with pytest.raises(ValueError, match="only 0 candles to train on"):
        make_folds(
            len(dates), WalkForwardSpec(start="20191201", folds=2, test_days=10), 24, 24, dates
        )


def test_a_cost_band_target_leaves_moves_that_do_not_pay_the_fees_unlabelled() -> None:
    close = pd.Series([100.0, 100.1, 101.0, 100.0, 99.0, 99.05])
    spec = TargetSpec(kind="direction_band", horizon=1, band=0.002)
    target = make_target(pd.DataFrame({"close": close}), spec).to_numpy()
    # +0.1% (inside the band), +0.9% (up), -1.0% (down), -1.0% (down), +0.05% (inside), last: none
    np.testing.assert_array_equal(target, [np.nan, 1.0, 0.0, 0.0, np.nan, np.nan])
    assert spec.task == "classification"


def test_one_definition_of_the_return_measures() -> None:
    """Training (long_flat), the backtest comparison (curve_metrics) and the tuning replay
    measure the same equity curve the same way."""
    from ml.metrics import return_measures
    from strategies.equity import curve_metrics

    log_returns = np.log(np.array([1.1, 0.5, 2.0, 1.0]))
    measures = return_measures(log_returns, periods_per_year=4)
    assert measures["max_drawdown"] == pytest.approx(0.5)
    assert measures["total_return"] == pytest.approx(0.1)
    assert measures["cagr"] == pytest.approx(0.1)  # one year of four candles
    assert measures["calmar"] == pytest.approx(0.2)
    curve = curve_metrics(np.exp(np.r_[0.0, np.cumsum(log_returns)]), np.ones(5), 4)
    for key in ("max_drawdown", "total_return", "cagr", "calmar", "sharpe"):
        assert curve[key] == pytest.approx(measures[key], rel=1e-12), key
    assert return_measures(np.zeros(3), 3)["calmar"] == 0.0  # no drawdown: 0, not NaN


def test_annualised_measures_need_ninety_days() -> None:
    """Two weeks of a rising market do not make a CAGR of +57,960% (issue 24): under 90
    days Sharpe, CAGR and Calmar are NaN; the window's own return over drawdown remains."""
    from ml.metrics import MIN_ANNUALISED_DAYS, long_flat, return_measures

    hourly = np.random.default_rng(3).normal(0.002, 0.01, size=24 * 89)
    short = return_measures(hourly, periods_per_year=8760)
    assert all(np.isnan(short[k]) for k in ("sharpe", "cagr", "calmar"))
    assert np.isfinite(short["total_return"]) and short["return_over_drawdown"] > 0
    days = int(MIN_ANNUALISED_DAYS)
    long = return_measures(np.r_[hourly, hourly[: 24 * (days - 89)]], periods_per_year=8760)
    assert all(np.isfinite(long[k]) for k in ("sharpe", "cagr", "calmar"))
    simulated = long_flat(np.ones(24 * 14 + 1), np.r_[0.0, hourly[: 24 * 14]])
    assert np.isnan(simulated["calmar"]) and simulated["exposure"] == 1.0


def test_a_fold_records_no_annualised_figure() -> None:
    """A fold's test block is a quarter: the demo's first fold recorded Calmar 285."""
    from ml.metrics import not_annualised

    figures = {
        "calmar": 285.7,
        "cagr": 9.1,
        "sharpe": 4.0,
        "total_return": 0.6,
        "max_drawdown": 0.03,
    }
    assert not_annualised(figures) == {"total_return": 0.6, "max_drawdown": 0.03}
