"""Our LightGBM as a real FreqAI prediction model, run by FreqAI's own retraining loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.data import import_candles
from strategies.results import parse_result_zip
from strategies.runner import BacktestRequest, run_backtest
from tests.conftest import FREQTRADE_TESTDATA, requires_shared

pytestmark = [requires_shared, pytest.mark.shared_data, pytest.mark.slow]

FREQAI = {
    "enabled": True,
    "identifier": "test",
    "purge_old_models": 2,
    "train_period_days": 6,
    "backtest_period_days": 2,
    "live_retrain_hours": 0,
    "feature_parameters": {
        "include_timeframes": ["5m"],
        "include_corr_pairlist": [],
        "label_period_candles": 12,
        "include_shifted_candles": 0,
        "indicator_periods_candles": [10, 20],
    },
    "data_split_parameters": {"test_size": 0.25, "shuffle": False},
    "model_training_parameters": {"n_estimators": 60, "num_leaves": 7},
}


def test_freqaimodel_tradingbot_lightgbm_backtests_offline(tmp_path: Path) -> None:
    import_candles(
        FREQTRADE_TESTDATA / "ETH_BTC-5m.feather",
        pair="ETH/BTC",
        timeframe="5m",
        exchange="binance",
        userdir=tmp_path,
    )
    request = BacktestRequest(
        strategy="FreqaiRegimeStrategy",
        pair="ETH/BTC",
        timeframe="5m",
        timerange="20180118-20180130",
        freqai=FREQAI,
        freqaimodel="TradingbotLightGBM",
    )
    run = run_backtest(request, tmp_path, use_cache=False)
    log = run.log.read_text()
    assert "TradingbotLightGBM" in log
    assert log.count("Training") >= 3  # FreqAI retrained on its rolling windows
    parsed = parse_result_zip(run.result_zip, "FreqaiRegimeStrategy")
    assert parsed.metrics.start.isoformat().startswith("2018-01-18")
    assert parsed.metrics.trades == len(parsed.trades)
