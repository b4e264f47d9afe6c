"""Regime-aware strategies driven by a registered Tradingbot model.

The model plumbing lives in the adapter (``ml.serving.ModelAdapter``, connected by
``strategies.hooks``), risk in the risk manager (``strategies.risk.RiskManager``,
reached through ``strategies.hooks``, configured by the ``RISK_*``
environment variables); this file only decides. In backtests the circuit breaker
is checked once per run (it is wall-clock state, not history); live and dry-run
entries check it on every trade. Configure the model in the Freqtrade config:

    "tradingbot": {"model_uri": "models:/btc_1h_hmm_lstm@champion",
                   "tracking_uri": "sqlite:////path/to/user_data/mlflow.db"}
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from freqtrade.strategy import DecimalParameter, IStrategy
from pandas import DataFrame

from strategies import hooks
from strategies.risk import refuse_entry

TAG_LENGTH = 250
DEFENSIVE_REGIMES = ("bear", "crash")
REGIME_STAKE = {"bull": 1.0, "sideways": 0.6, "volatile": 0.4}


class RegimeStrategy(IStrategy):
    """Long when the model expects a rise with confidence, outside bearish regimes."""

    INTERFACE_VERSION = 3
    timeframe = "1h"
    can_short = False
    startup_candle_count = 400  # 168-candle features + sequences + regime filter burn-in
    process_only_new_candles = True

    minimal_roi = {"0": 0.08, "720": 0.02}
    stoploss = -0.05
    trailing_stop = False

    entry_threshold = DecimalParameter(0.50, 0.70, default=0.55, decimals=2, space="buy")
    exit_threshold = DecimalParameter(0.30, 0.50, default=0.47, decimals=2, space="sell")

    default_model_uri = "models:/btc_1h_hmm_lstm@champion"

    def bot_start(self, **kwargs: Any) -> None:
        """Connect the adapter to the model named in the config, and the risk manager."""
        hooks.connect(self)

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """Model predictions, filtered regime probabilities and do_predict."""
        return self.adapter.populate(dataframe, metadata["pair"], live=hooks.is_live(self))

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """Enter when the model is trusted, confident enough, and the regime is not bearish."""
        confident = dataframe["&-p_up"] > self.entry_threshold.value
        calm = ~dataframe["&-regime"].isin(DEFENSIVE_REGIMES)
        entries = (dataframe["do_predict"] == 1) & confident & calm
        dataframe.loc[entries, "enter_long"] = 1
        why = f"entry p_up>{self.entry_threshold.value:.2f}"
        dataframe.loc[entries, "enter_tag"] = _tags(dataframe[entries], why)
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """Exit when the model turns against the position or the regime turns bearish."""
        doubtful = dataframe["&-p_up"] < self.exit_threshold.value
        bearish = dataframe["&-regime"].isin(DEFENSIVE_REGIMES)
        exits = (dataframe["do_predict"] == 1) & (doubtful | bearish)
        dataframe.loc[exits, "exit_long"] = 1
        why = f"exit p_up<{self.exit_threshold.value:.2f}"
        dataframe.loc[exits & doubtful, "exit_tag"] = _tags(dataframe[exits & doubtful], why)
        turned = exits & ~doubtful
        dataframe.loc[turned, "exit_tag"] = _tags(dataframe[turned], "exit: defensive regime")
        return dataframe

    def custom_stake_amount(
        self,
        pair: str,
        current_time: datetime,
        current_rate: float,
        proposed_stake: float,
        min_stake: float | None,
        max_stake: float,
        leverage: float,
        entry_tag: str | None,
        side: str,
        **kwargs: Any,
    ) -> float:
        """Scale the stake by the model's confidence and the regime at entry.

        A failure here stakes nothing (no trade): Freqtrade would fall back to the
        proposed stake, past the exposure limit."""
        try:
            return self._stake(pair, proposed_stake, min_stake)
        except Exception as exc:
            refuse_entry(getattr(self, "risk", None), pair, exc)
            return 0.0

    def _stake(self, pair: str, proposed_stake: float, min_stake: float | None) -> float:
        dataframe, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        if dataframe.empty:
            return proposed_stake
        last = dataframe.iloc[-1]
        p_up = float(last.get("&-p_up", np.nan))
        confidence = np.clip((p_up - 0.5) / max(self.entry_threshold.value - 0.5, 1e-6), 0.5, 1.0)
        regime_share = REGIME_STAKE.get(str(last.get("&-regime", "")), 0.5)
        stake = Decimal(str(proposed_stake)) * Decimal(str(float(confidence) * regime_share))
        stake = hooks.sized_stake(self, pair, stake)
        return float(max(stake, Decimal(str(min_stake or 0.0))))

    def confirm_trade_entry(
        self,
        pair: str,
        order_type: str,
        amount: float,
        rate: float,
        time_in_force: str,
        current_time: datetime,
        entry_tag: str | None,
        side: str,
        **kwargs: Any,
    ) -> bool:
        """Every entry passes the risk manager (circuit breaker live, trade and exposure limits).

        Fails closed: Freqtrade reads an exception raised here as "allow the trade"."""
        return hooks.confirm_entry(self, pair, amount, rate)


def _tags(rows: DataFrame, why: str) -> list[str]:
    """``<regime>|<why>``: the regime first, so results group by regime at entry. Tags hold
    no per-candle numbers, so Freqtrade's tag statistics group trades by the rule that
    made them; a reasoning model's reason is kept without its numbers."""
    if rows.empty:  # no candle qualifies: nothing to tag (string ops on empty floats fail)
        return []
    regime = rows["&-regime"].fillna("").astype(str).replace("", "unknown")
    reasons = rows["&-reason"].astype(str).map(reason_tag) if "&-reason" in rows else why
    return (regime + "|" + reasons).str.slice(0, TAG_LENGTH).tolist()


def reason_tag(reason: str) -> str:
    """A reason without its numbers: ``long: regime bull (p=0.80), RSI 28 oversold,
    momentum +1.20%; situation was up 57% of 1,234 training candles`` becomes
    ``long: regime bull, RSI oversold, momentum up``."""
    head = reason.split(";")[0]
    head = re.sub(r"\s*\([^)]*\)", "", head)
    head = re.sub(r"\+\d[\d.,]*%", "up", head)
    head = re.sub(r"-\d[\d.,]*%", "down", head)
    head = re.sub(r"\s*\d[\d.,]*%?", "", head)
    return " ".join(head.split())
