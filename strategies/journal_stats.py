"""What the journal says: positions, one position's exits, and statistics by regime or block.

Read-only views of :mod:`strategies.journal` as DataFrames (money as ``Decimal``),
for the CLI (``tradingbot journal ...``) and the report.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from strategies.journal import Bot, JournalError, Position, Snapshot, session

GROUPS = ("regime", "block", "exit")
Group = Literal["regime", "block", "exit"]


def _positions(path: Path, bot: str | None) -> list[Position]:
    with session(path) as db:
        query = select(Position).join(Bot).options(selectinload(Position.exits))
        if bot is not None:
            # the full name, or the start of one (the bots table shortens cache keys)
            names = db.scalars(select(Bot.name)).all()
            matching = [n for n in names if n == bot] or [n for n in names if n.startswith(bot)]
            if len(matching) != 1:
                found = "no bot" if not matching else f"{len(matching)} bots"
                raise JournalError(
                    f"{found} named {bot!r} (or starting so) in the journal",
                    hint=f"bots: {matching or names}",
                )
            query = query.where(Bot.name == matching[0])
        rows = list(db.scalars(query.options(selectinload(Position.bot))).all())
        db.expunge_all()
    return rows


def positions(path: Path, bot: str | None = None) -> pd.DataFrame:
    """One row per position, newest first (``show`` gives a position's bot, tags and exits)."""
    rows = [
        {
            "id": p.id,
            "pair": p.pair,
            "opened": p.open_date,
            "closed": p.close_date,
            "regime": p.regime_entry or "-",
            "exit": p.exit_block or ("open" if p.is_open else "-"),
            "exits": len(p.exits),
            "profit": p.profit_abs,
        }
        for p in _positions(path, bot)
    ]
    frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["id"])
    return frame.sort_values("opened", ascending=False) if rows else frame


def position(path: Path, position_id: int) -> tuple[dict[str, object], pd.DataFrame]:
    """A position's fields and its exits in sequence."""
    with session(path) as db:
        found = db.get(Position, position_id, options=[selectinload(Position.exits)])
        if found is None:
            raise JournalError(
                f"no position {position_id} in the journal", hint="tradingbot journal list"
            )
        fields = {
            "bot": found.bot.name,
            "pair": found.pair,
            "open": found.open_date,
            "close": found.close_date,
            "entry price": found.entry_price,
            "entry amount": found.entry_amount,
            "stake": found.stake_amount,
            "entry tag": found.entry_tag,
            "regime at entry": found.regime_entry,
            "exit reason": found.exit_reason,
            "regime at exit": found.regime_exit,
            "profit": found.profit_abs,
            "profit ratio": found.profit_ratio,
        }
        exits = pd.DataFrame(
            [
                {
                    "seq": e.sequence,
                    "date": e.date,
                    "amount": e.amount,
                    "remaining": e.remaining,
                    "price": e.price,
                    "fee": e.fee,
                    "profit_abs": e.profit_abs,
                    "reason": e.reason,
                }
                for e in found.exits
            ]
        )
    return fields, exits


def stats(
    path: Path, bot: str | None = None, by: Group | None = None, *, pooled: bool = False
) -> pd.DataFrame:
    """Closed positions' trades, win rate and profit, per bot, overall or by regime at
    entry, entry blocks, or exit block. ``pooled``: every bot added up instead, each
    distinct set of trades once (a backtest imported under two names counts once); only
    meaningful for bots of one market and timeframe, which is the caller's choice."""
    closed = [p for p in _positions(path, bot) if not p.is_open]
    if pooled:
        closed = _distinct_bots(closed)
    groups: dict[tuple[str, str], list[Position]] = {}
    for p in closed:
        owner = "all bots" if pooled else p.bot.name
        groups.setdefault((owner, _group(p, by)), []).append(p)
    rows = []
    for (owner, name), members in sorted(groups.items()):
        profits = [p.profit_abs or Decimal(0) for p in members]
        rows.append(
            {
                "bot": owner,
                **({str(by): name} if by else {}),
                "trades": len(members),
                "winrate": sum(x > 0 for x in profits) / len(profits),
                "profit_abs": sum(profits, Decimal(0)),
                "mean_ratio": sum(p.profit_ratio or 0.0 for p in members) / len(members),
                "partials": sum(max(len(p.exits) - 1, 0) for p in members),
            }
        )
    return pd.DataFrame(rows)


def _distinct_bots(closed: list[Position]) -> list[Position]:
    """The positions of every bot whose trades are not those of a bot seen before."""
    by_bot: dict[int, list[Position]] = {}
    for p in closed:
        by_bot.setdefault(p.bot_id, []).append(p)
    seen: set[tuple[object, ...]] = set()
    kept: list[Position] = []
    for members in by_bot.values():
        fingerprint = tuple(
            sorted(
                (p.pair, p.open_date, p.close_date, p.entry_amount, p.profit_abs) for p in members
            )
        )
        if fingerprint not in seen:
            seen.add(fingerprint)
            kept += members
    return kept


def _group(position: Position, by: Group | None) -> str:
    if by is None:
        return "all"
    value = {
        "regime": position.regime_entry,
        "block": position.entry_blocks,
        "exit": position.exit_block,
    }[by]
    return value or "-"


def bots(path: Path) -> pd.DataFrame:
    """Every bot with its latest performance snapshot and the window its positions span
    (first entry to last exit). Bot names end in a backtest's cache key: shown to 8
    characters, enough to tell them apart (``--bot`` takes the full name)."""
    with session(path) as db:
        rows = []
        for bot in db.scalars(select(Bot).order_by(Bot.created_at)).all():
            latest = db.scalars(
                select(Snapshot).where(Snapshot.bot_id == bot.id).order_by(Snapshot.id.desc())
            ).first()
            first, last = db.execute(
                select(func.min(Position.open_date), func.max(Position.close_date)).where(
                    Position.bot_id == bot.id
                )
            ).one()
            rows.append(
                {
                    "bot": _short_name(bot.name),
                    "window": f"{first:%Y-%m-%d}..{last:%Y-%m-%d}" if first and last else "-",
                    "model": _short_model(bot.model_uri),
                    "positions": latest.positions if latest else 0,
                    "closed": latest.closed if latest else 0,
                    "profit_abs": latest.profit_abs if latest else Decimal(0),
                    "winrate": latest.winrate if latest else None,
                    "max_drawdown_abs": latest.max_drawdown_abs if latest else Decimal(0),
                }
            )
    return pd.DataFrame(rows)


def _short_name(name: str) -> str:
    """``backtest/RegimeStrategy/3f9c2a1b`` for ``backtest/RegimeStrategy/3f9c2a1b...``."""
    head, _, tail = name.rpartition("/")
    hexadecimal = len(tail) > 12 and all(c in "0123456789abcdef" for c in tail)
    return f"{head}/{tail[:8]}" if head and hexadecimal else name


def _short_model(uri: str | None) -> str:
    """``btc_1h@champion`` for ``models:/btc_1h@champion``; ``-`` without a model."""
    return uri.removeprefix("models:/") if uri else "-"
