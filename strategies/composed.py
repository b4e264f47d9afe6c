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

from freqtrade.persistence import Trade
from freqtrade.strategy import IStrategy, stoploss_from_absolute
from pandas import DataFrame

from features.timeframes import timeframe_to_seconds
from strategies import hooks
from strategies.blocks import Param
from strategies.composition import COMPOSITIONS_DIR, Composition, load_composition
from strategies.guarded import GuardedStrategy
from strategies.position_rules import Held, LastRow, RuleSet
from strategies.risk import refuse_entry

CONFIDENCE_COLUMN = "entry_confidence"
# trade custom data of a resizing rule: the scale the position was last sized for
SIZED_FOR = "position_sized_for"


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
        if not RuleSet(composition.position_rules(), {}).gives_exit_reasons:
            # Freqtrade deep-copies every open trade at every candle before it calls a
            # strategy's own custom_exit (a second of a 10-pair backtest); with no rule
            # that leaves early, Freqtrade's default is the same answer without the copy
            cls.custom_exit = IStrategy.custom_exit  # type: ignore[method-assign]

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        # each trade's stop and stake share, fixed at its signal candle by the position
        # blocks: (pair, open time) -> (stop price or None, share)
        self._entries: dict[tuple[str, datetime], tuple[float | None, float]] = {}

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
        """The model's predictions and regimes (when it reads a model), the blocks' columns.

        Position blocks add theirs: an ATR stop, a volatility scale."""
        if self._reads_model():
            dataframe = hooks.model_columns(self, dataframe, metadata["pair"])
        for name, column in self._rules().columns(dataframe).items():
            dataframe[name] = column
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
        """The position blocks' stop set at the signal candle, as Freqtrade's relative stop.

        The highest, when several set one."""
        stop, _ = self._entry(trade)
        if stop is None:
            return None
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
        """The first position block that says to leave (e.g. ``time_stop``)."""
        return self._rules().exit_now(self._held(trade, current_time, current_profit))

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
        """A position block's partial exit, else its resize.

        ``take_profit_ladder`` sells a share of what is left; ``vol_target`` moves the
        position in proportion to its new scale."""
        rules = self._rules()
        held = self._held(trade, current_time, current_profit)
        partial = rules.partial_exit(held)
        if partial is not None:
            name, share = partial
            return -share * float(trade.stake_amount), name
        dataframe, _ = self.dp.get_analyzed_dataframe(trade.pair, self.timeframe)
        resize = None if dataframe.empty else rules.resize(held, LastRow(dataframe))
        if resize is None:
            return None, None
        name, scale = resize
        hooks.mark_sized(trade, SIZED_FOR, scale, current_time)
        change = float(trade.amount) * current_rate * (scale / held.sized_for - 1.0)
        return (min(change, max_stake) if change > 0 else change), name

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
            last = LastRow(dataframe)
            confidence = last[CONFIDENCE_COLUMN] * self._rules().entry(last)[1]
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

    def _signal_row(self, pair: str, trade: Trade) -> Any:
        """The analysed row of the candle whose signal opened ``trade`` (the one before
        its fill); None when the frame no longer has it."""
        dataframe, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        signal_time = trade.open_date_utc - timedelta(seconds=self._candle_seconds())
        dates = dataframe["date"]
        # the frame is in time order: a binary search, not a comparison of every date
        position = int(dates.searchsorted(signal_time, side="right")) - 1
        if position < 0 or dates.iloc[position] != signal_time:
            return None
        return dataframe.iloc[position]

    def _rules(self) -> RuleSet:
        """The composition's position rules, with the current parameter values."""
        return RuleSet(self.composition.position_rules(), self.values())

    def _entry(self, trade: Trade) -> tuple[float | None, float]:
        """The stop and the stake's share the position blocks set at ``trade``'s signal
        candle (looked up once per trade: the callbacks run at every candle)."""
        key = (trade.pair, trade.open_date_utc)
        if key not in self._entries:
            signal = self._signal_row(trade.pair, trade)
            if signal is None:  # not in the frame (yet): nothing set, ask again next time
                return None, 1.0
            self._entries[key] = self._rules().entry(signal)
        return self._entries[key]

    def _held(self, trade: Trade, current_time: datetime, current_profit: float) -> Held:
        """``trade`` as the position blocks see it."""
        sized_for = trade.get_custom_data(SIZED_FOR, default=None)
        if sized_for is None:  # the share its entry stake was sized with
            sized_for = self._entry(trade)[1]
        return Held(
            candles_held=(current_time - trade.open_date_utc).total_seconds()
            / self._candle_seconds(),
            profit=current_profit,
            exits_done=trade.nr_of_successful_exits,
            sized_for=float(sized_for),
            days_since_sized=hooks.days_since_sized(trade, current_time),
        )
