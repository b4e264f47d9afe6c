"""The trade journal: every position of every bot, with its partial exits, in one SQLite file.

One database under the user dir (``UserDir.journal``), written with SQLAlchemy as
Freqtrade writes its own. It is filled from Freqtrade's results, never by
re-doing Freqtrade's accounting: a backtest's result trades, or a paper or live
bot's trade database read through Freqtrade's own models. Tables:

* ``bots``: one per source (a backtest result, a paper or live database): name,
  mode (backtest, paper, live, optimisation), strategy, its composition, model URI
  and version, config hash;
* ``positions``: one per Freqtrade trade: pair, entry size and price, the entry
  blocks and regime (from the entry tag), the exit reason and block, Freqtrade's
  profit (``Decimal``, to the cent and beyond);
* ``exits``: every exit order of a position in sequence: size, size remaining,
  price, fee and profit, the reason (a partial exit's order tag);
* ``snapshots``: a bot's performance after each import that changed something.

Importing is idempotent: a position is keyed by bot, pair and open time, and a
re-import of the same trades changes nothing (an open position that closed since is
brought up to date). The schema version is SQLite's ``user_version``; an older
journal is copied aside and migrated in place, never dropped.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import ForeignKey, String, UniqueConstraint, create_engine, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    selectinload,
)

from common.errors import TradingbotError
from common.sqltypes import Money, UtcDateTime

MODES = ("backtest", "paper", "live", "optimisation")
CENT = Decimal("0.01")


class JournalError(TradingbotError):
    """The journal cannot be opened or written."""


class Base(DeclarativeBase):
    pass


class Bot(Base):
    __tablename__ = "bots"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    mode: Mapped[str] = mapped_column(String(20))
    strategy: Mapped[str] = mapped_column(String(100))
    composition: Mapped[str | None]  # JSON of the blocks and their defaults
    model_uri: Mapped[str | None]
    model_version: Mapped[str | None]
    config_hash: Mapped[str | None]
    source: Mapped[str | None]  # the result file or database it was read from
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    positions: Mapped[list[Position]] = relationship(back_populates="bot")


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (UniqueConstraint("bot_id", "pair", "open_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id"))
    pair: Mapped[str] = mapped_column(String(40))
    is_open: Mapped[bool]
    open_date: Mapped[datetime] = mapped_column(UtcDateTime)
    close_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    entry_price: Mapped[Decimal] = mapped_column(Money)
    entry_amount: Mapped[Decimal] = mapped_column(Money)
    stake_amount: Mapped[Decimal] = mapped_column(Money)
    entry_tag: Mapped[str | None]
    entry_blocks: Mapped[str | None]  # "+"-joined block names (or a model's reason)
    regime_entry: Mapped[str | None]
    exit_reason: Mapped[str | None]
    exit_block: Mapped[str | None]
    regime_exit: Mapped[str | None]
    profit_abs: Mapped[Decimal | None] = mapped_column(Money)  # Freqtrade's
    profit_ratio: Mapped[float | None]
    bot: Mapped[Bot] = relationship(back_populates="positions")
    exits: Mapped[list[Exit]] = relationship(
        back_populates="position", order_by="Exit.sequence", cascade="all, delete-orphan"
    )


class Exit(Base):
    __tablename__ = "exits"
    __table_args__ = (UniqueConstraint("position_id", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    position_id: Mapped[int] = mapped_column(ForeignKey("positions.id"))
    sequence: Mapped[int]  # 1, 2, ... in time order; the last closes the position
    date: Mapped[datetime] = mapped_column(UtcDateTime)
    amount: Mapped[Decimal] = mapped_column(Money)
    remaining: Mapped[Decimal] = mapped_column(Money)  # of the entry amount, after this exit
    price: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money)  # in the stake currency
    profit_abs: Mapped[Decimal] = mapped_column(Money)  # this exit's share, fees included
    reason: Mapped[str | None]
    position: Mapped[Position] = relationship(back_populates="exits")


class Snapshot(Base):
    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id"))
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime)
    positions: Mapped[int]
    closed: Mapped[int]
    profit_abs: Mapped[Decimal] = mapped_column(Money)
    winrate: Mapped[float | None]
    max_drawdown_abs: Mapped[Decimal] = mapped_column(Money)  # of closed positions' PnL


# -- schema versions ----------------------------------------------------------------------

SCHEMA_VERSION = 2
# How each older version becomes the next. Version 1 had no exit blocks or regimes at
# exit and no drawdown in snapshots; columns are only ever added.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE positions ADD COLUMN exit_block VARCHAR",
        "ALTER TABLE positions ADD COLUMN regime_exit VARCHAR",
        "ALTER TABLE snapshots ADD COLUMN max_drawdown_abs VARCHAR(40) NOT NULL DEFAULT '0'",
    ),
}


def _migrate(path: Path) -> None:
    """Bring an existing journal to :data:`SCHEMA_VERSION`; a copy of the old file is kept
    beside it (``journal.sqlite.v<N>.bak``) first."""
    with sqlite3.connect(path) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    if "bots" not in tables:
        return  # a new, empty file
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path} has journal schema {version}, newer than this version's {SCHEMA_VERSION}",
            hint="upgrade tradingbot; the file was left untouched",
        )
    if version == SCHEMA_VERSION:
        return
    shutil.copy2(path, path.with_name(f"{path.name}.v{version}.bak"))
    with sqlite3.connect(path) as db:
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.close()


def open_journal(path: Path) -> Engine:
    """The journal's engine: created when missing, migrated when older."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        _migrate(path)
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return engine


@contextmanager
def session(path: Path) -> Iterator[Session]:
    """A session on the journal that commits on success and rolls back on any error, so
    an import is all or nothing."""
    engine = open_journal(path)
    try:
        with Session(engine) as db, db.begin():
            yield db
    finally:
        engine.dispose()


# -- importing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BotInfo:
    """Who made the trades."""

    name: str
    mode: str
    strategy: str
    composition: Mapping[str, Any] | None = None
    model_uri: str | None = None
    model_version: str | None = None
    config_hash: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Imported:
    bot: str
    added: int
    updated: int
    unchanged: int


def import_trades(path: Path, bot: BotInfo, trades: Iterable[Mapping[str, Any]]) -> Imported:
    """Record Freqtrade trades (dicts as in backtest results and ``Trade.to_json``, with
    their ``orders``) for ``bot``; see the module docstring for what is kept."""
    if bot.mode not in MODES:
        raise JournalError(f"mode {bot.mode!r}: one of {MODES}")
    added: list[TradeRows] = []
    updated = unchanged = 0
    with session(path) as db:
        row = _bot(db, bot)
        known = {(p.pair, p.open_date): p for p in _positions(db, row)}
        for trade in trades:
            rows = _rows(trade)
            existing = known.get((rows.position["pair"], rows.position["open_date"]))
            if existing is None:
                added.append(rows)
            elif _recorded_fingerprint(existing) != rows.fingerprint:
                _replace(db, existing, rows.as_position())
                updated += 1
            else:
                unchanged += 1
        if added or updated:
            db.flush()
            _insert(db, row.id, added)
            db.add(_snapshot(db, row))
    return Imported(bot.name, len(added), updated, unchanged)


def _positions(db: Session, bot: Bot) -> list[Position]:
    """The bot's recorded positions with their exits, in two queries (a paper bot's
    re-import compares every one)."""
    if bot.id is None:  # a new bot
        return []
    found = select(Position).where(Position.bot_id == bot.id).options(selectinload(Position.exits))
    return list(db.scalars(found))


def _bot(db: Session, bot: BotInfo) -> Bot:
    row = db.scalars(select(Bot).where(Bot.name == bot.name)).one_or_none()
    if row is None:
        row = Bot(name=bot.name, created_at=datetime.now(UTC))
        db.add(row)
    row.mode, row.strategy, row.source = bot.mode, bot.strategy, bot.source
    row.composition = json.dumps(bot.composition, sort_keys=True) if bot.composition else None
    row.model_uri, row.model_version = bot.model_uri, bot.model_version
    row.config_hash = bot.config_hash
    return row


def split_tag(tag: str | None) -> tuple[str | None, str | None]:
    """``bull|model_probability+regime_filter`` -> (``bull``, ``model_probability+...``);
    a tag without a regime (a strategy without a model, ``roi``, ``stop_loss``) -> (None, tag)."""
    if not tag:
        return None, None
    regime, _, rest = tag.partition("|")
    return (regime, rest) if rest else (None, tag)


def _time(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    return pd.Timestamp(value).tz_convert(UTC).to_pydatetime()


def _money(value: Any) -> Decimal:
    return Decimal(str(value))


def _profit(value: Any) -> Decimal:
    """Freqtrade's profit, which it rounds to 8 decimals (without the float's noise)."""
    return _money(value).quantize(Decimal("1e-8"))


@dataclass(frozen=True)
class TradeRows:
    """A Freqtrade trade as the journal's rows: its position and its exits, in order."""

    position: dict[str, Any]
    exits: list[dict[str, Any]]

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        exits = [(e["sequence"], e["amount"], e["price"]) for e in self.exits]
        p = self.position
        return _fingerprint(p["is_open"], p["profit_abs"], p["exit_reason"], exits)

    def as_position(self) -> Position:
        position = Position(**self.position)
        position.exits.extend(Exit(**values) for values in self.exits)
        return position


def _rows(trade: Mapping[str, Any]) -> TradeRows:
    """A Freqtrade trade as a journal position, its exit orders as exits."""
    filled = [o for o in trade.get("orders") or [] if o.get("order_filled_timestamp")]
    orders = sorted(filled, key=lambda o: o["order_filled_timestamp"])
    entries = [o for o in orders if o["ft_is_entry"]]
    sells = [o for o in orders if not o["ft_is_entry"]]
    open_rate, fee_open = _money(trade["open_rate"]), _money(trade["fee_open"])
    fee_close = _money(trade.get("fee_close") or trade["fee_open"])
    entry_amount = sum((_money(o["amount"]) for o in entries), Decimal(0))
    regime_entry, blocks = split_tag(trade.get("enter_tag"))
    regime_exit, exit_block = split_tag(trade.get("exit_reason"))
    is_open = bool(trade.get("is_open", False))
    position = {
        "pair": trade["pair"],
        "is_open": is_open,
        "open_date": _time(trade["open_timestamp"]),
        "close_date": None if is_open else _time(trade["close_timestamp"]),
        "entry_price": open_rate,
        "entry_amount": entry_amount,
        "stake_amount": _money(trade.get("max_stake_amount") or trade["stake_amount"]),
        "entry_tag": trade.get("enter_tag"),
        "entry_blocks": blocks,
        "regime_entry": regime_entry,
        "exit_reason": None if is_open else trade.get("exit_reason"),
        "exit_block": None if is_open else exit_block,
        "regime_exit": None if is_open else regime_exit,
        "profit_abs": None if is_open else _profit(trade["profit_abs"]),
        "profit_ratio": None if is_open else float(trade["profit_ratio"]),
    }
    exits = []
    remaining = entry_amount
    for sequence, order in enumerate(sells, start=1):
        amount, price = _money(order["amount"]), _money(order["safe_price"])
        remaining -= amount
        fee = amount * price * fee_close
        cost = amount * open_rate * (1 + fee_open)
        last = sequence == len(sells) and not is_open
        exits.append(
            {
                "sequence": sequence,
                "date": _time(order["order_filled_timestamp"]),
                "amount": amount,
                "remaining": remaining,
                "price": price,
                "fee": fee,
                "profit_abs": amount * price - fee - cost,
                "reason": trade.get("exit_reason") if last else order.get("ft_order_tag"),
            }
        )
    return TradeRows(position, exits)


def _insert(db: Session, bot_id: int, added: list[TradeRows]) -> None:
    """New positions and their exits, in one statement each: a backtest adds a thousand
    at once, which as ORM objects took most of an import's time."""
    if not added:
        return
    statement = insert(Position).returning(Position.id, sort_by_parameter_order=True)
    ids = db.scalars(statement, [{**rows.position, "bot_id": bot_id} for rows in added]).all()
    exits = [
        {**values, "position_id": position_id}
        for position_id, rows in zip(ids, added, strict=True)
        for values in rows.exits
    ]
    if exits:
        db.execute(insert(Exit), exits)


def _fingerprint(
    is_open: bool, profit_abs: Any, exit_reason: Any, exits: Iterable[tuple[Any, ...]]
) -> tuple[Any, ...]:
    """What decides whether a re-imported trade changed: its state, its profit, its exit
    reason and its exits (sequence, amount, price)."""
    return (is_open, profit_abs, exit_reason, tuple(exits))


def _recorded_fingerprint(position: Position) -> tuple[Any, ...]:
    exits = ((e.sequence, e.amount, e.price) for e in position.exits)
    return _fingerprint(position.is_open, position.profit_abs, position.exit_reason, exits)


def _replace(db: Session, existing: Position, new: Position) -> None:
    for column in Position.__table__.columns:
        if column.key not in ("id", "bot_id"):
            setattr(existing, column.key, getattr(new, column.key))
    exits = list(new.exits)
    new.exits.clear()  # detach them from the transient position first
    existing.exits.clear()
    db.flush()  # the old exits are gone before the new ones take their sequence numbers
    existing.exits.extend(exits)


def _snapshot(db: Session, bot: Bot) -> Snapshot:
    positions = db.execute(
        select(
            Position.is_open, Position.close_date, Position.open_date, Position.profit_abs
        ).where(Position.bot_id == bot.id)
    ).all()
    closed = sorted(
        (p for p in positions if not p.is_open), key=lambda p: p.close_date or p.open_date
    )
    profits = [p.profit_abs or Decimal(0) for p in closed]
    equity, peak, drawdown = Decimal(0), Decimal(0), Decimal(0)
    for profit in profits:
        equity += profit
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
    return Snapshot(
        bot_id=bot.id,
        taken_at=datetime.now(UTC),
        positions=len(positions),
        closed=len(closed),
        profit_abs=sum(profits, Decimal(0)),
        winrate=sum(p > 0 for p in profits) / len(profits) if profits else None,
        max_drawdown_abs=drawdown,
    )
