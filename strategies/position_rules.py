"""What a position block does to an open trade, once for both engines.

A position block (``strategies.blocks.position_block``) carries a :class:`PositionRule`.
Both engines loop over a composition's rules and ask each the same questions:
Freqtrade's callbacks (``strategies.composed``) and the tuning replay
(``strategies.replay``). Neither of them branches on a block's name.

* :meth:`PositionRule.columns`: the per-candle values it needs, added to the analysed
  frame (``populate_indicators``, or the replay's frame), named by the rule;
* :meth:`PositionRule.entry_share`: the share of the entry's stake it keeps (1: all);
* :meth:`PositionRule.stop_price`: a stop, fixed at the signal candle (price units);
* at each open of a held trade, in this order: :meth:`PositionRule.partial_exit` (a
  share to sell), :meth:`PositionRule.exit_now` (a reason to leave), and
  :meth:`PositionRule.resize` (a new scale for the position).

Each one reads a :class:`Held` view of the trade and the row of the candle before
(``signal`` / ``latest``: column -> value). Every value at candle t depends on candles
<= t only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.indicators import natr
from ml.sizing import DEFAULT_BAND, desired_exposure, rebalance_due
from ml.volatility import periods_per_year_of, trailing_log_volatility

FloatArray = NDArray[np.float64]
Values = Mapping[str, Any]
Row = Mapping[str, float]


class LastRow(Mapping[str, float]):
    """The last row of an analysed frame, read column by column. A stake decision reads
    one or two columns; building the whole row (a Series over every column, of mixed
    types) was most of its cost, once per trade."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def __getitem__(self, column: str) -> float:
        value: Any = self._frame[column].iat[-1]
        return float(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._frame.columns)

    def __len__(self) -> int:
        return len(self._frame.columns)


@dataclass(frozen=True)
class Held:
    """An open trade as a rule sees it, in either engine."""

    candles_held: float  # since the entry's fill
    profit: float  # ratio at the price, fees included
    exits_done: int  # partial exits so far
    sized_for: float  # the scale the position was last sized for (1 without sizing)
    days_since_sized: float  # since the entry, or the last resize


class PositionRule:
    """A position block's behaviour; the defaults do nothing."""

    columns_read: ClassVar[tuple[str, ...]] = ()  # adapter columns it reads, when any

    def columns(self, frame: pd.DataFrame, values: Values) -> dict[str, FloatArray]:
        return {}

    def entry_share(self, signal: Row, values: Values) -> float:
        return 1.0

    def stop_price(self, signal: Row, values: Values) -> float | None:
        return None

    def partial_exit(self, held: Held, values: Values) -> float:
        return 0.0

    def exit_now(self, held: Held, values: Values) -> str | None:
        return None

    def resize(self, held: Held, latest: Row, values: Values) -> float | None:
        return None


ATR_STOP_COLUMN = "atr_stop_price"
VOL_SCALE_COLUMN = "vol_target_scale"


def atr_stop_prices(frame: pd.DataFrame, values: Values) -> FloatArray:
    """Per candle: the stop a trade entered on its signal would carry (price units)."""
    distance = natr(frame, int(values["atr_window"])) / 100.0 * float(values["atr_multiple"])
    return np.asarray(frame["close"].to_numpy(dtype="float64") * (1.0 - distance.to_numpy()))


def time_stop_reached(candles_held: float, values: Values) -> bool:
    """Whether a trade open for ``candles_held`` candles must leave."""
    return candles_held >= int(values["max_candles"])


def ladder_sell_share(profit: float, exits_done: int, values: Values) -> float:
    """Share of the open amount to sell now (0..1) at ``profit`` (ratio, fees included)
    after ``exits_done`` partial exits: one rung at a time."""
    if exits_done >= int(values["ladder_rungs"]):
        return 0.0
    level = float(values["ladder_first"]) + exits_done * float(values["ladder_step"])
    return float(values["ladder_share"]) if profit >= level else 0.0


VOL_TARGET_DAYS = 7  # the trailing forecast without a model's: the last week


def vol_target_scale(frame: pd.DataFrame, values: Values) -> FloatArray:
    """Per candle: the share of its stake a position holds under ``vol_target``,
    ``min(1, vol_target / forecast)`` (1 where no forecast is known yet)."""
    if "&-volatility" in frame:
        forecast = frame["&-volatility"].to_numpy(dtype="float64")
    else:
        per_year = periods_per_year_of(frame["date"])
        window = max(2, round(VOL_TARGET_DAYS * per_year / 365.0))
        forecast = np.exp(trailing_log_volatility(frame["close"], window, per_year))
    scale = desired_exposure(np.ones(len(frame)), forecast, float(values["vol_target"]))
    return np.nan_to_num(scale, nan=1.0)


class AtrStop(PositionRule):
    """A stop a multiple of the ATR below the signal candle's close."""

    def columns(self, frame: pd.DataFrame, values: Values) -> dict[str, FloatArray]:
        return {ATR_STOP_COLUMN: atr_stop_prices(frame, values)}

    def stop_price(self, signal: Row, values: Values) -> float | None:
        return float(signal[ATR_STOP_COLUMN])


class TimeStop(PositionRule):
    """Leave after a number of candles."""

    def exit_now(self, held: Held, values: Values) -> str | None:
        return "time_stop" if time_stop_reached(held.candles_held, values) else None


class TakeProfitLadder(PositionRule):
    """Sell a share of what is left at each rung of profit."""

    def partial_exit(self, held: Held, values: Values) -> float:
        return ladder_sell_share(held.profit, held.exits_done, values)


class VolTarget(PositionRule):
    """Hold ``min(1, target / forecast volatility)`` of the stake; resize by the sized
    allocation's rule (:func:`ml.sizing.rebalance_due`)."""

    columns_read = ("&-volatility",)

    def columns(self, frame: pd.DataFrame, values: Values) -> dict[str, FloatArray]:
        return {VOL_SCALE_COLUMN: vol_target_scale(frame, values)}

    def entry_share(self, signal: Row, values: Values) -> float:
        return float(signal[VOL_SCALE_COLUMN])

    def resize(self, held: Held, latest: Row, values: Values) -> float | None:
        scale = float(latest[VOL_SCALE_COLUMN])
        if not np.isfinite(scale) or scale <= 0:
            return None
        due = rebalance_due(scale, held.sized_for, False, held.days_since_sized, DEFAULT_BAND)
        return scale if due else None


@dataclass(frozen=True)
class RuleSet:
    """A composition's position rules (block name -> rule, in its order) with the
    parameter values: the questions both engines ask, answered once."""

    rules: Mapping[str, PositionRule]
    values: Values

    def columns(self, frame: pd.DataFrame) -> dict[str, FloatArray]:
        """Every rule's per-candle columns of ``frame``."""
        out: dict[str, FloatArray] = {}
        for rule in self.rules.values():
            out.update(rule.columns(frame, self.values))
        return out

    @property
    def gives_exit_reasons(self) -> bool:
        """Does any rule ever say to leave now (:meth:`PositionRule.exit_now`)?"""
        return any(type(rule).exit_now is not PositionRule.exit_now for rule in self.rules.values())

    def entry(self, signal: Row) -> tuple[float | None, float]:
        """The highest stop the rules set at the signal candle (None: none), and the
        share of the entry's stake they keep (the product of theirs)."""
        stops, share = [], 1.0
        for rule in self.rules.values():
            share *= rule.entry_share(signal, self.values)
            stop = rule.stop_price(signal, self.values)
            if stop is not None and np.isfinite(stop):
                stops.append(stop)
        return (max(stops) if stops else None), share

    def partial_exit(self, held: Held) -> tuple[str, float] | None:
        """The first rule's share to sell now, with its name."""
        for name, rule in self.rules.items():
            share = rule.partial_exit(held, self.values)
            if share > 0:
                return name, share
        return None

    def exit_now(self, held: Held) -> str | None:
        """The first rule's reason to leave now."""
        for rule in self.rules.values():
            reason = rule.exit_now(held, self.values)
            if reason is not None:
                return reason
        return None

    def resize(self, held: Held, latest: Row) -> tuple[str, float] | None:
        """The first rule's new scale for the position, with its name."""
        for name, rule in self.rules.items():
            scale = rule.resize(held, latest, self.values)
            if scale is not None:
                return name, scale
        return None
