"""Mark-to-market equity from a backtest's orders, and the regime allocation strategy
on the real Freqtrade engine (generated market: runs on a fresh clone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.layout import UserDir
from strategies.equity import curve_metrics, equity_curve
from tests.conftest import local_context


def _ms(stamp: str) -> int:
    return int(pd.Timestamp(stamp, tz="UTC").value // 1_000_000)


def test_equity_is_cash_plus_holdings_at_every_close() -> None:
    candles = pd.DataFrame(
        {
            "date": pd.date_range("2021-01-01", periods=5, freq="1h", tz="UTC"),
            "close": [100.0, 110.0, 120.0, 90.0, 100.0],
        }
    )
    trade = {
        "fee_open": 0.001,
        "fee_close": 0.002,
        "orders": [
            # 5 units bought at 100 (filled at 01:00), 2 sold at 120 (03:00), 3 sold at 100 (04:00)
            {
                "ft_is_entry": True,
                "amount": 5.0,
                "cost": 500.0,
                "order_filled_timestamp": _ms("2021-01-01 01:00"),
            },
            {
                "ft_is_entry": False,
                "amount": 2.0,
                "cost": 240.0,
                "order_filled_timestamp": _ms("2021-01-01 03:00"),
            },
            {
                "ft_is_entry": False,
                "amount": 3.0,
                "cost": 300.0,
                "order_filled_timestamp": _ms("2021-01-01 04:00"),
            },
        ],
    }
    curve = equity_curve([trade], candles, 1000.0)
    cash_1 = 1000.0 - 500.0 - 0.5
    cash_3 = cash_1 + 240.0 - 0.48
    cash_4 = cash_3 + 300.0 - 0.6
    np.testing.assert_allclose(
        curve["equity"], [1000.0, cash_1 + 550.0, cash_1 + 600.0, cash_3 + 270.0, cash_4]
    )
    np.testing.assert_allclose(curve["position"][[0, 4]], [0.0, 0.0])
    metrics = curve_metrics(curve["equity"].to_numpy(), curve["position"].to_numpy(), 8760)
    peak = cash_1 + 600.0
    assert metrics["max_drawdown"] == pytest.approx(1 - (cash_3 + 270.0) / peak)
    assert metrics["position_changes"] == 2  # in, then out


@pytest.mark.slow
def test_regime_allocation_on_the_freqtrade_engine_follows_its_walk_forward_model(
    tmp_path: Path,
) -> None:
    """Train the allocation spec's design on a generated market, backtest its fold models
    walk-forward with RegimeAllocationStrategy on the real engine, and find the engine's
    trades where the model's exposure says, valued at every close."""
    from experiments.backtesting.run import backtest
    from experiments.training import train
    from features.data import import_candles
    from features.data.synthetic import generate
    from ml.registry import promote
    from ml.tracking import configure, default_tracking_uri
    from tests.experiments.test_regime_allocation import small_spec

    candles, _ = generate(24 * 400, seed=21)
    candles["date"] = pd.date_range("2020-01-01", periods=len(candles), freq="1h", tz="UTC").astype(
        "datetime64[ns, UTC]"
    )
    candles.to_feather(tmp_path / "c.feather")
    userdir = tmp_path / "ud"
    import_candles(
        tmp_path / "c.feather",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        layout=UserDir(userdir),
    )
    spec = small_spec().model_copy(update={"name": "engine_allocation"})
    walk = spec.walk_forward.model_copy(update={"start": "20200801", "folds": 12, "test_days": 20})
    spec = spec.model_copy(update={"walk_forward": walk})
    uri = default_tracking_uri(userdir)
    result = train(spec, context=local_context(userdir, uri))
    promote(
        configure(uri, UserDir(userdir)),
        "engine_allocation",
        result.version,
        "test",
        user="pytest",
        force=True,
    )

    summary = backtest(
        strategy="RegimeAllocationStrategy",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        timerange="",
        model="engine_allocation@champion",
        context=local_context(userdir, uri),
        walk_forward=True,
    )
    assert summary.metrics.trades > 0
    assert set(summary.comparison) == {
        "strategy",
        "always_long",
        "sma50_daily",
        "momentum_30d",
        "always_long_sized",
        "sma50_sized",
    }
    strategy = summary.comparison["strategy"]
    final = 1000.0 * (1 + summary.metrics.profit_total)
    assert 1000.0 * (1 + strategy["total_return"]) == pytest.approx(final, rel=0.005)
    # every position change is a regime-allocation change: entries and exits, no drift trades
    assert strategy["position_changes"] <= 2 * summary.metrics.trades
    client = configure(uri, UserDir(userdir))
    logged = client.get_run(summary.run_id).data.metrics
    assert "mtm.max_drawdown" in logged and "baseline.sma50_daily.calmar" in logged

    # without a strategy the model's kind chooses it; a strategy that does not fit is
    # refused before Freqtrade runs (before: RegimeStrategy traded the exposures, -60%)
    from experiments.backtesting.checks import BacktestMismatch

    common = {
        "pair": "BTC/USDT",
        "timeframe": "1h",
        "exchange": "binance",
        "model": "engine_allocation@champion",
        "context": local_context(userdir, uri),
    }
    again = backtest(strategy=None, timerange="", walk_forward=True, **common)
    assert again.cache_hit and again.metrics.trades == summary.metrics.trades
    with pytest.raises(BacktestMismatch, match="does not fit the model"):
        backtest(strategy="RegimeStrategy", timerange="", walk_forward=True, **common)
    # a walk-forward timerange is honoured inside the predictions' span, refused outside
    with pytest.raises(BacktestMismatch, match="reaches outside the walk-forward"):
        backtest(strategy=None, timerange="20190101-20200301", walk_forward=True, **common)
    part = backtest(strategy=None, timerange="20201001-20201101", walk_forward=True, **common)
    assert (
        str(part.metrics.start)[:10] >= "2020-10-01" and str(part.metrics.end)[:10] <= "2020-11-01"
    )
    # a window the final model was trained on is refused, naming the way out
    with pytest.raises(BacktestMismatch, match="no candle is out of sample"):
        backtest(strategy=None, timerange="20200301-20200401", **common)
