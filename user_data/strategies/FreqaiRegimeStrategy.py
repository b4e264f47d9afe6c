"""A FreqAI strategy for the FreqAI-style retraining loop (``--freqaimodel TradingbotLightGBM``).

Features follow FreqAI's conventions (``%-`` columns, ``&-`` target); the target
is the mean forward return over ``label_period_candles``.
"""

from __future__ import annotations

from typing import Any

import talib.abstract as ta
from freqtrade.strategy import IStrategy
from pandas import DataFrame


class FreqaiRegimeStrategy(IStrategy):
    """Long when FreqAI's model expects a positive forward return."""

    INTERFACE_VERSION = 3
    timeframe = "5m"
    can_short = False
    startup_candle_count = 40
    minimal_roi = {"0": 0.05}
    stoploss = -0.05
    process_only_new_candles = True

    def feature_engineering_expand_all(
        self, dataframe: DataFrame, period: int, metadata: dict, **kwargs: Any
    ) -> DataFrame:
        """Indicators expanded over the configured periods."""
        dataframe["%-rsi-period"] = ta.RSI(dataframe, timeperiod=period)
        dataframe["%-roc-period"] = ta.ROC(dataframe, timeperiod=period)
        dataframe["%-natr-period"] = ta.NATR(dataframe, timeperiod=period)
        return dataframe

    def feature_engineering_standard(
        self, dataframe: DataFrame, metadata: dict, **kwargs: Any
    ) -> DataFrame:
        """Features computed once."""
        dataframe["%-pct-change"] = dataframe["close"].pct_change()
        dataframe["%-raw_volume"] = dataframe["volume"]
        return dataframe

    def set_freqai_targets(self, dataframe: DataFrame, metadata: dict, **kwargs: Any) -> DataFrame:
        """Mean forward return over label_period_candles (uses the future: a label, not a feature)."""
        horizon = self.freqai_info["feature_parameters"]["label_period_candles"]
        dataframe["&-s_close"] = (
            dataframe["close"].shift(-horizon).rolling(horizon).mean() / dataframe["close"] - 1
        )
        return dataframe

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """FreqAI trains and predicts here."""
        return self.freqai.start(dataframe, metadata, self)

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """Enter when the model expects a rise and trusts the row."""
        entries = (dataframe["do_predict"] == 1) & (dataframe["&-s_close"] > 0.002)
        dataframe.loc[entries, ["enter_long", "enter_tag"]] = (1, "freqai|forward return > 0.2%")
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """Exit when the model expects a fall."""
        dataframe.loc[dataframe["&-s_close"] < 0, "exit_long"] = 1
        return dataframe
