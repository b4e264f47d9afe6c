"""Regime allocation: hold a target exposure per regime, change it only when the regime does.

The registered model (a ``regime_allocation`` spec, e.g.
``experiments/specs/btc_1h_regime_allocation.toml``) reports its target exposure
(0..1) as ``&-exposure``: the exposure of the decided regime, gated by the daily trend
when the spec says so. This file only turns it into trades:

* flat and the target is above 0: enter, staking that share of the wallet;
* in a trade and the target is 0: exit;
* in a trade, when ``ml.sizing.rebalance_due`` says so (the regime's own exposure
  changed, or a day after the position was last sized the target is more than
  ``rebalance_band`` from what it was sized for): Freqtrade's own position adjustment adds to
  or sells part of the position, toward the target's share of the pair's budget (the
  wallet over the trade slots, as at entry). The walk-forward simulation trades the same rule.

A sized allocation (a spec with ``[sizing]``) reports the exposure sized by its
volatility forecast as ``&-exposure``, its own as ``&-exposure_unsized`` and the
forecast as ``&-volatility``; an unsized one only ``&-exposure``, whose target then
changes only with the regime.

Every entry passes the risk manager (``confirm_trade_entry``) and every addition
too (``GuardedStrategy`` caps or refuses what ``adjust_trade_position`` asks for);
both fail closed. No take-profit and no stop: the regime decides (a stop would
be another strategy). Candles the model may not score (inside its training window,
``do_predict = 0``) give no signal. Configure the model in the Freqtrade config:

    "tradingbot": {"model_uri": "models:/btc_1h_regime_allocation@champion"}
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from freqtrade.exchange import timeframe_to_seconds
from freqtrade.persistence import Trade
from pandas import DataFrame

from ml.sizing import DEFAULT_BAND, rebalance_due
from strategies import hooks
from strategies.guarded import GuardedStrategy
from strategies.risk import refuse_entry

TAG_LENGTH = 250
SIZED_FOR = "target_exposure"  # trade custom data: the target the position was last sized for


class RegimeAllocationStrategy(GuardedStrategy):
    """Long the model's target exposure; flat when it is 0."""

    INTERFACE_VERSION = 3
    timeframe = "1h"
    can_short = False
    # slow-clock features of daily closes over eight 21-day half-lives, plus two days
    # (in candles of the configured timeframe: see __init__)
    startup_candle_count = 4100
    history_days = 170
    process_only_new_candles = True
    position_adjustment_enable = True

    minimal_roi = {"0": 100.0}  # never: the regime decides when to leave
    stoploss = -0.99
    use_exit_signal = True
    exit_profit_only = False

    # a daily rebalance moves the position only when the target is this far from it
    # (share of equity; the [sizing] band of the shipped specs)
    rebalance_band = DEFAULT_BAND
    default_model_uri = "models:/btc_1h_regime_allocation@champion"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        seconds = timeframe_to_seconds(str(config.get("timeframe") or self.timeframe))
        self.startup_candle_count = int(np.ceil(self.history_days * 86_400 / seconds))

    def bot_start(self, **kwargs: Any) -> None:
        """Connect the adapter to the model named in the config, and the risk manager."""
        hooks.connect(self)

    def informative_pairs(self) -> list[tuple[str, str]]:
        """The candles of the model's reference pairs, when it has any."""
        return hooks.reference_informative_pairs(self)

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """The model's target exposure (``&-exposure``), regime and ``do_predict``.

        Also whether the regime's own exposure changed at the candle
        (``exposure_changed``: a held position follows it at once)."""
        dataframe = hooks.model_columns(self, dataframe, metadata["pair"])
        trusted = dataframe["do_predict"] == 1
        dataframe["target_exposure"] = np.where(
            trusted, dataframe["&-exposure"].fillna(0.0).clip(0.0, 1.0), np.nan
        )
        sized = "&-exposure_unsized" in dataframe
        own = dataframe["&-exposure_unsized"] if sized else dataframe["&-exposure"]
        own = own.where(trusted, 0.0).fillna(0.0)
        dataframe["exposure_changed"] = own.ne(own.shift(1)) & own.shift(1).notna()
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """Enter when the target exposure is above 0."""
        entries = dataframe["target_exposure"] > 0
        dataframe.loc[entries, "enter_long"] = 1
        dataframe.loc[entries, "enter_tag"] = _tags(dataframe[entries])
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """Exit when the target exposure is 0."""
        exits = dataframe["target_exposure"] == 0
        dataframe.loc[exits, "exit_long"] = 1
        dataframe.loc[exits, "exit_tag"] = _tags(dataframe[exits])
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
        """The target exposure's share of the stake, within the exposure limit.

        A failure stakes nothing (Freqtrade would fall back to the proposed stake)."""
        try:
            target = self._target(pair)
            stake = Decimal(str(proposed_stake)) * Decimal(str(target))
            return float(hooks.sized_stake(self, pair, stake))
        except Exception as exc:
            refuse_entry(getattr(self, "risk", None), pair, exc)
            return 0.0

    def adjust_trade_position(
        self,
        trade: Trade,
        current_time: datetime,
        current_rate: float,
        current_profit: float,
        min_stake: float | None,
        max_stake: float,
        current_entry_rate: float,
        current_exit_rate: float,
        current_entry_profit: float,
        current_exit_profit: float,
        **kwargs: Any,
    ) -> float | None:
        """Move the position to the target exposure when ``ml.sizing.rebalance_due``
        says so, against the target it was last sized for; never on price drift alone.

        Positive: stake to add (cut or refused by the risk manager: see
        ``strategies.guarded``); negative: stake to sell.
        A target of 0 is left to the exit signal."""
        target, changed = self._latest(trade.pair)
        sized_for = float(trade.get_custom_data(SIZED_FOR, default=_tag_target(trade.enter_tag)))
        since = hooks.days_since_sized(trade, current_time)
        due = rebalance_due(target, sized_for, changed, since, self.rebalance_band)
        if target <= 0 or not due or target == sized_for:
            return None
        held = float(trade.amount) * current_rate
        wanted = target * self._pair_budget(trade, held)
        hooks.mark_sized(trade, SIZED_FOR, target, current_time)
        if wanted > held:
            return min(wanted - held, max_stake)
        return -(held - wanted)

    def _pair_budget(self, trade: Trade, held: float) -> float:
        """This pair's share of the wallet, as Freqtrade's "unlimited" stake divides it
        at entry: (free balance + this position's value + the other positions' stakes)
        x tradable_balance_ratio / trade slots. Across a whitelist every pair then gets
        an equal budget, and sizing each by its own volatility toward one target gives
        inverse-volatility weights: equal risk budgets, a portfolio at most at the target."""
        free = float(self.wallets.get_free(self.config["stake_currency"])) if self.wallets else 0.0
        others = max(0.0, float(Trade.total_open_trades_stakes()) - float(trade.stake_amount))
        ratio = float(self.config.get("tradable_balance_ratio", 0.99))
        slots = float(self.config.get("max_open_trades", 1))
        if not 0 < slots < float("inf"):  # unlimited trades: one slot per pair
            slots = float(max(1, len(self.dp.current_whitelist())))
        return (free + held + others) * ratio / slots

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
        """Every new trade passes the risk manager; it fails closed."""
        return hooks.confirm_entry(self, pair, amount, rate)

    def _target(self, pair: str) -> float:
        return self._latest(pair)[0]

    def _latest(self, pair: str) -> tuple[float, bool]:
        """The last analysed candle's target exposure, and whether the regime's own
        exposure changed at it."""
        dataframe, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        if dataframe.empty:
            return 0.0, False
        last = dataframe.iloc[-1]
        value = float(last["target_exposure"])
        target = value if np.isfinite(value) else 0.0
        return target, bool(last["exposure_changed"])


def _tags(rows: DataFrame) -> list[str]:
    """``<regime>|exposure <target>``: the regime first, so results group by regime."""
    if rows.empty:
        return []
    regime = rows["&-regime"].fillna("").astype(str).replace("", "unknown")
    target = rows["target_exposure"].map("{:.2f}".format)
    return (regime + "|exposure " + target).str.slice(0, TAG_LENGTH).tolist()


def _tag_target(tag: str | None) -> float:
    """The target exposure written in an entry tag (``<regime>|exposure 0.50``)."""
    try:
        return float(str(tag).rsplit("exposure ", 1)[1])
    except (IndexError, ValueError):
        return 1.0
