"""Our LightGBM as a real FreqAI prediction model, run by FreqAI's own retraining loop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.layout import UserDir
from features.data import import_candles
from strategies.results import parse_result_zip
from strategies.runner import BacktestRequest, freqai_section, run_backtest
from tests.conftest import FREQTRADE_TESTDATA, requires_shared

pytestmark = [requires_shared, pytest.mark.shared_data, pytest.mark.slow]


def test_freqaimodel_tradingbot_lightgbm_backtests_offline(tmp_path: Path) -> None:
    import_candles(
        FREQTRADE_TESTDATA / "ETH_BTC-5m.feather",
        pair="ETH/BTC",
        timeframe="5m",
        exchange="binance",
        layout=UserDir(tmp_path),
    )
    request = BacktestRequest(
        strategy="FreqaiRegimeStrategy",
        pair="ETH/BTC",
        timeframe="5m",
        timerange="20180118-20180130",
        freqai=freqai_section(n_estimators=60, num_leaves=7),
        freqaimodel="TradingbotLightGBM",
    )
    run = run_backtest(request, UserDir(tmp_path), environment=os.environ, use_cache=False)
    log = run.log.read_text()
    assert "TradingbotLightGBM" in log
    assert log.count("Training") >= 3  # FreqAI retrained on its rolling windows
    parsed = parse_result_zip(run.result_zip, "FreqaiRegimeStrategy")
    assert parsed.metrics.start.isoformat().startswith("2018-01-18")
    assert parsed.metrics.trades == len(parsed.trades)
