"""Regime-aware strategies driven by a registered Tradingbot model.

The model plumbing lives in the adapter (``ml.serving.ModelAdapter``), risk in
the risk manager (``strategies.risk.RiskManager``, configured by the ``RISK_*``
environment variables); this file only decides. In backtests the circuit breaker
is checked once per run (it is wall-clock state, not history); live and dry-run
entries check it on every trade. Configure the model in the Freqtrade config:

    "tradingbot": {"model_uri": "models:/btc_1h_hmm_lstm@champion",
                   "tracking_uri": "sqlite:////path/to/user_data/mlflow.db"}
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from freqtrade.enums import RunMode
from freqtrade.persistence import Trade
from freqtrade.strategy import DecimalParameter, IStrategy
from pandas import DataFrame

from ml import observability
from ml.observability import MetricsTextfile
from ml.serving import ModelAdapter
from strategies.risk import Position, RiskManager, RiskSettings, refuse_entry

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
        """Connect the adapter to the model named in the config."""
        settings = self.config.get("tradingbot", {})
        user_dir = Path(self.config.get("user_data_dir", "user_data"))
        tracking_uri = (
            settings.get("tracking_uri")
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{(user_dir / 'mlflow.db').resolve()}"
        )
        report = settings.get("guard_report")
        timerange = str(self.config.get("timerange") or "")
        start = timerange.split("-")[0] if "-" in timerange else ""
        if settings.get("log_json"):  # our own log lines as JSON, with this bot's correlation id
            observability.correlation_id.set(observability.new_correlation_id())
            observability.json_logging_for(("ml", "strategies", "tradingbot"))
        textfile = settings.get("metrics_textfile")
        metrics = MetricsTextfile(Path(textfile)) if textfile else None
        self.adapter = ModelAdapter(
            settings.get("model_uri", self.default_model_uri),
            tracking_uri=tracking_uri,
            report_path=Path(report) if report else None,
            evaluation_start=pd.Timestamp(start, tz="UTC") if start else None,
            stitched_predictions=Path(settings["predictions"])
            if settings.get("predictions")
            else None,
            metrics=metrics,
        )
        self.risk = RiskManager(RiskSettings.from_env(os.environ, user_dir), metrics=metrics)

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """Model predictions, filtered regime probabilities and do_predict."""
        live = self.dp.runmode in (RunMode.LIVE, RunMode.DRY_RUN)
        return self.adapter.populate(dataframe, metadata["pair"], live=live)

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
        stake = self.risk.size_stake(pair, stake, _open_positions(), self._wallet_total())
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
        try:
            live = self.dp.runmode in (RunMode.LIVE, RunMode.DRY_RUN)
            decision = self.risk.check_entry(
                pair,
                Decimal(str(amount)) * Decimal(str(rate)),
                _open_positions(),
                self._wallet_total(),
                use_breaker=live,
            )
            return decision.allowed
        except Exception as exc:
            return refuse_entry(getattr(self, "risk", None), pair, exc)

    def _wallet_total(self) -> Decimal:
        return Decimal(str(self.wallets.get_total_stake_amount())) if self.wallets else Decimal(0)


def _open_positions() -> list[Position]:
    return [
        Position(t.pair, Decimal(str(t.stake_amount))) for t in Trade.get_trades_proxy(is_open=True)
    ]


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
