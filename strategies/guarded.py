"""The base of every Tradingbot strategy: no order that adds risk can skip the risk manager.

Freqtrade asks ``confirm_trade_entry`` only before a trade's first order and
``custom_stake_amount`` only for a new trade; an increase of an open position
(``adjust_trade_position`` returning a positive stake) passes neither. So the
guard is put where no strategy file can forget it: when a subclass of
:class:`GuardedStrategy` is created, its ``adjust_trade_position`` is wrapped so
that every positive stake it returns goes through
:meth:`strategies.risk.RiskManager.size_increase` (circuit breaker when trading,
per-market exposure room) and is cut or refused there; reductions pass unchanged.
Its ``confirm_trade_entry`` is wrapped so that an exception refuses (Freqtrade
reads one as "allow").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from freqtrade.strategy import IStrategy

from strategies import hooks
from strategies.risk import refuse_entry

Adjustment = float | tuple[float | None, str | None] | None


class GuardedStrategy(IStrategy):  # type: ignore[misc]  # Freqtrade ships no stubs
    """A Freqtrade strategy whose position increases and entries pass the risk manager."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "adjust_trade_position" in own and not _is_guarded(own["adjust_trade_position"]):
            cls.adjust_trade_position = _guard_increase(own["adjust_trade_position"])
        if "confirm_trade_entry" in own and not _is_guarded(own["confirm_trade_entry"]):
            cls.confirm_trade_entry = _refuse_on_exception(own["confirm_trade_entry"])


def _is_guarded(method: Callable[..., Any]) -> bool:
    return bool(getattr(method, "__tradingbot_guarded__", False))


def _guard_increase(adjust: Callable[..., Adjustment]) -> Callable[..., Adjustment]:
    @functools.wraps(adjust)
    def guarded(self: Any, trade: Any, *args: Any, **kwargs: Any) -> Adjustment:
        wanted = adjust(self, trade, *args, **kwargs)
        stake, tag = (wanted if isinstance(wanted, tuple) else (wanted, None))[:2]
        if stake is None or not stake > 0:  # nothing, a reduction (or NaN: nothing)
            return wanted if stake is None or stake < 0 else None
        allowed = hooks.allowed_increase(self, trade.pair, float(stake), kwargs.get("min_stake"))
        if allowed is None:
            return (None, tag) if isinstance(wanted, tuple) else None
        return (allowed, tag) if isinstance(wanted, tuple) else allowed

    guarded.__tradingbot_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def _refuse_on_exception(confirm: Callable[..., bool]) -> Callable[..., bool]:
    @functools.wraps(confirm)
    def guarded(self: Any, pair: str, *args: Any, **kwargs: Any) -> bool:
        try:
            return bool(confirm(self, pair, *args, **kwargs))
        except Exception as exc:
            return refuse_entry(getattr(self, "risk", None), pair, exc)

    guarded.__tradingbot_guarded__ = True  # type: ignore[attr-defined]
    return guarded
