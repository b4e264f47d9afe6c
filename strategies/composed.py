"""The Freqtrade strategy that builds itself from a composition (:mod:`strategies.composition`).

A strategy file only names its composition::

    class TrendPullbackStrategy(ComposedStrategy):
        '''Buy oversold pullbacks in an uptrend.'''

        composition = composition_beside(__file__, "TrendPullbackStrategy")

When the class is created, the composition's Freqtrade settings (timeframe, stoploss,
ROI, trailing stop, position adjustment) and one Freqtrade ``*Parameter`` per declared
block parameter become class attributes, so Freqtrade loads ``<Strategy>.json`` and
lists the parameters as for any strategy. The ``populate_*`` methods call
:meth:`Composition.signals`, the same code the tuning replay calls. Position blocks
become Freqtrade callbacks: ``atr_stop`` a ``custom_stoploss``, ``time_stop`` a
``custom_exit``, ``take_profit_ladder`` partial exits and ``vol_target`` resizing through
``adjust_trade_position``.
Model plumbing stays in the adapter (``strategies.hooks``); every entry and every
position increase passes the risk manager (``strategies.guarded``), which fails closed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from freqtrade.persistence import Trade
from freqtrade.strategy import stoploss_from_absolute
from pandas import DataFrame

from features.timeframes import timeframe_to_seconds
from ml.sizing import DEFAULT_BAND, rebalance_due
from strategies import hooks
from strategies.blocks import (
    Param,
    atr_stop_prices,
    ladder_sell_share,
    time_stop_reached,
    vol_target_scale,
)
from strategies.composition import COMPOSITIONS_DIR, Composition, load_composition
from strategies.guarded import GuardedStrategy
from strategies.risk import refuse_entry

ATR_STOP_COLUMN = "atr_stop_price"
CONFIDENCE_COLUMN = "entry_confidence"
VOL_SCALE_COLUMN = "vol_target_scale"
# trade custom data of vol_target: the scale the position was last sized for, and when
VOL_SIZED_FOR, VOL_SIZED_AT = "vol_target_sized_for", "vol_target_sized_at"


def composition_beside(strategy_file: str, name: str) -> Composition:
    """The composition ``compositions/<name>.toml`` next to a strategy file."""
    return load_composition(
        Path(strategy_file).resolve().parent / COMPOSITIONS_DIR / f"{name}.toml"
    )


class ComposedStrategy(GuardedStrategy):
    """A strategy made of blocks; subclasses set ``composition``."""

    INTERFACE_VERSION = 3
    can_short = False
    process_only_new_candles = True
    use_exit_signal = True

    composition: ClassVar[Composition]
    _params: ClassVar[tuple[Param, ...]] = ()
    default_model_uri: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        composition = cls.__dict__.get("composition")
        if composition is None:
            return
        if composition.name != cls.__name__:
            raise TypeError(f"{cls.__name__} is given the composition of {composition.name}")
        for name, value in composition.freqtrade_settings().items():
            setattr(cls, name, value)
        cls.default_model_uri = composition.model
        if cls.__doc__ is None:  # a generated class: its doc is the composition's
            cls.__doc__ = composition.doc or f"The composition {composition.name}."
        cls._params = tuple(composition.params())
        for param in cls._params:
            setattr(cls, param.name, param.freqtrade())

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        # the ATR stop of each trade, fixed at its signal candle: (pair, open time) -> price
        self._entry_stops: dict[tuple[str, datetime], float] = {}

    # -- Freqtrade's populate_* ---------------------------------------------------------

    def bot_start(self, **kwargs: Any) -> None:
        """Connect the adapter (when the composition reads a model) and the risk manager."""
        if self._reads_model():
            hooks.connect(self)
        else:
            hooks.connect_risk(self)

    def informative_pairs(self) -> list[tuple[str, str]]:
        """The candles of the model's reference pairs, when it has any."""
        return hooks.reference_informative_pairs(self)

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        """The model's predictions and regimes (when it reads a model), the ATR stop."""
        if self._reads_model():
            dataframe = hooks.model_columns(self, dataframe, metadata["pair"])
        if self.composition.uses("atr_stop"):
            dataframe[ATR_STOP_COLUMN] = atr_stop_prices(dataframe, self.values())
        if self.composition.uses("vol_target"):
            dataframe[VOL_SCALE_COLUMN] = vol_target_scale(dataframe, self.values())
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        """Enter where every entry block fires; the tag names the regime and the blocks."""
        enter, confidence, tag = self.composition.entries(dataframe, self.values())
        dataframe.loc[enter, "enter_long"] = 1
        dataframe.loc[enter, "enter_tag"] = tag[enter]
        dataframe[CONFIDENCE_COLUMN] = confidence
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        """Exit where any exit block fires; the tag names the first that did."""
        exit_, tag = self.composition.exits(dataframe, self.values())
        dataframe.loc[exit_, "exit_long"] = 1
        dataframe.loc[exit_, "exit_tag"] = tag[exit_]
        return dataframe

    # -- position blocks as Freqtrade callbacks -----------------------------------------

    def custom_stoploss(
        self,
        pair: str,
        trade: Trade,
        current_time: datetime,
        current_rate: float,
        current_profit: float,
        after_fill: bool,
        **kwargs: Any,
    ) -> float | None:
        """``atr_stop``: the stop set at the signal candle, as Freqtrade's relative stop."""
        if not self.composition.uses("atr_stop"):
            return None
        key = (pair, trade.open_date_utc)
        stop = self._entry_stops.get(key)
        if stop is None:  # looked up once per trade: called on every candle it is open
            stop = self._signal_candle_value(pair, trade, ATR_STOP_COLUMN)
            if stop is None or not np.isfinite(stop):
                return None
            self._entry_stops[key] = stop
        return float(stoploss_from_absolute(stop, current_rate, leverage=trade.leverage))

    def custom_exit(
        self,
        pair: str,
        trade: Trade,
        current_time: datetime,
        current_rate: float,
        current_profit: float,
        **kwargs: Any,
    ) -> str | None:
        """``time_stop``: leave after the declared number of candles."""
        if not self.composition.uses("time_stop"):
            return None
        held = (current_time - trade.open_date_utc).total_seconds() / self._candle_seconds()
        return "time_stop" if time_stop_reached(held, self.values()) else None

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
    ) -> tuple[float | None, str | None]:
        """``take_profit_ladder``: sell a share of what is left at each rung of profit;
        otherwise ``vol_target``: resize the position in proportion to its scale."""
        if self.composition.uses("take_profit_ladder"):
            share = ladder_sell_share(current_profit, trade.nr_of_successful_exits, self.values())
            if share > 0:
                return -share * float(trade.stake_amount), "take_profit_ladder"
        if self.composition.uses("vol_target"):
            return self._vol_target_resize(trade, current_time, current_rate, max_stake)
        return None, None

    def _vol_target_resize(
        self, trade: Trade, current_time: datetime, current_rate: float, max_stake: float
    ) -> tuple[float | None, str | None]:
        """The stake to add (or, negative, to sell) so that the position moves from the
        scale it was last sized for to the last candle's, when ``rebalance_due`` says so."""
        dataframe, _ = self.dp.get_analyzed_dataframe(trade.pair, self.timeframe)
        if dataframe.empty:
            return None, None
        scale = float(dataframe[VOL_SCALE_COLUMN].iloc[-1])
        sized_for = trade.get_custom_data(VOL_SIZED_FOR, default=None)
        if sized_for is None:  # the scale its entry stake was sized with
            sized_for = self._signal_candle_value(trade.pair, trade, VOL_SCALE_COLUMN) or 1.0
        sized_at = trade.get_custom_data(VOL_SIZED_AT, default=None)
        since = current_time - (
            datetime.fromisoformat(sized_at) if sized_at else trade.open_date_utc
        )
        days = since.total_seconds() / 86_400
        due = rebalance_due(scale, float(sized_for), False, days, DEFAULT_BAND)
        if not np.isfinite(scale) or scale <= 0 or not due:
            return None, None
        held = float(trade.amount) * current_rate
        change = held * (scale / float(sized_for) - 1.0)
        trade.set_custom_data(VOL_SIZED_FOR, scale)
        trade.set_custom_data(VOL_SIZED_AT, current_time.isoformat())
        return (min(change, max_stake) if change > 0 else change), "vol_target"

    # -- stake and risk -----------------------------------------------------------------

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
        """The proposed stake scaled by the entry's confidence, within the exposure limit.

        The confidence is the product of the entry blocks'; ``vol_target`` scales it too.
        A failure stakes nothing: Freqtrade would fall back to the proposed stake, past
        the exposure limit."""
        try:
            dataframe, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
            if dataframe.empty:
                return proposed_stake
            confidence = float(dataframe[CONFIDENCE_COLUMN].iloc[-1])
            if self.composition.uses("vol_target"):
                confidence *= float(dataframe[VOL_SCALE_COLUMN].iloc[-1])
            stake = Decimal(str(proposed_stake)) * Decimal(str(confidence))
            stake = hooks.sized_stake(self, pair, stake)
            return float(max(stake, Decimal(str(min_stake or 0.0))))
        except Exception as exc:
            refuse_entry(getattr(self, "risk", None), pair, exc)
            return 0.0

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

    # -- helpers ------------------------------------------------------------------------

    def values(self) -> dict[str, float]:
        """The current value of every declared parameter (defaults, or the tuned file's)."""
        return {p.name: getattr(self, p.name).value for p in self._params}

    def _reads_model(self) -> bool:
        configured = self.config.get("tradingbot", {}).get("model_uri")
        return bool(self.composition.model or configured)

    def _candle_seconds(self) -> int:
        return timeframe_to_seconds(str(self.config.get("timeframe") or self.timeframe))

    def _signal_candle_value(self, pair: str, trade: Trade, column: str) -> float | None:
        """``column`` on the candle whose signal opened ``trade`` (the one before its fill)."""
        dataframe, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        signal_time = trade.open_date_utc - timedelta(seconds=self._candle_seconds())
        rows = dataframe.loc[dataframe["date"] == signal_time, column]
        return float(rows.iloc[-1]) if len(rows) else None
