"""Where the journal's trades come from: Freqtrade's own results, read as Freqtrade wrote them.

* a backtest: the trades of its result zip (with their orders);
* a paper or live bot: its trade database, read through Freqtrade's own models
  (``Trade.to_json``), so profits are Freqtrade's, never recomputed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from common.errors import TradingbotError
from common.layout import UserDir
from strategies.composition import Composition, compositions_in
from strategies.journal import BotInfo, Imported, import_trades
from strategies.results import parse_result_zip


def composition_of(layout: UserDir, strategy: str) -> dict[str, Any] | None:
    """The composition a composed strategy traded with (from the user dir), as JSON."""
    found: Composition | None = compositions_in(layout.strategies).get(strategy)
    return found.model_dump(mode="json") if found else None


def journal_backtest(
    layout: UserDir,
    result_zip: Path,
    strategy: str,
    *,
    mode: str = "backtest",
    model_uri: str | None = None,
    model_version: str | None = None,
    config_hash: str | None = None,
) -> Imported:
    """Record a backtest's trades; the bot is the backtest (named by its result folder,
    so re-running the same backtest finds the same bot and adds nothing)."""
    trades = parse_result_zip(result_zip, strategy).trades
    bot = BotInfo(
        name=f"{mode}/{strategy}/{result_zip.parent.name}",
        mode=mode,
        strategy=strategy,
        composition=composition_of(layout, strategy),
        model_uri=model_uri,
        model_version=model_version,
        config_hash=config_hash,
        source=str(result_zip),
    )
    return import_trades(layout.journal, bot, trades.to_dict("records"))


class JournalSourceError(TradingbotError):
    """A bot's trade database that cannot be read as it is."""


def database_trades(db_url: str) -> list[dict[str, Any]]:
    """Every trade of a Freqtrade trade database, as ``Trade.to_json`` gives them.

    The database is only read: SQLite is opened with ``mode=ro`` and PostgreSQL in a
    read-only transaction, and it is never created nor migrated (Freqtrade's
    ``init_db`` would, and would update a running paper bot's open dry-run orders)."""
    from freqtrade.persistence import Order, Trade
    from sqlalchemy import select
    from sqlalchemy.orm import scoped_session, sessionmaker

    engine = _read_only_engine(db_url)
    try:
        _check_schema(engine, db_url)
        session = scoped_session(sessionmaker(bind=engine, autoflush=False))
        Trade.session = Order.session = session
        try:
            return [trade.to_json() for trade in session.scalars(select(Trade)).all()]
        finally:
            session.rollback()
            session.remove()
    except JournalSourceError:
        raise
    except Exception as exc:  # a corrupt or foreign file: a sentence, not a traceback
        raise JournalSourceError(
            f"{redacted(db_url)} cannot be read as a Freqtrade trade database "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from exc
    finally:
        engine.dispose()


def redacted(db_url: str) -> str:
    """``db_url`` with any password replaced by ``***`` (for logs, records and errors)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


def _read_only_engine(db_url: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    try:
        url = make_url(db_url)
    except Exception as exc:
        raise JournalSourceError(f"{redacted(db_url)} is not a database URL") from exc
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not url.database or not path.is_file():
            raise JournalSourceError(
                f"no trade database at {path if url.database else redacted(db_url)}",
                hint="give the bot's own db_url, e.g. sqlite:///user_data/tradesv3.dryrun.sqlite",
            )
        location = f"file:{path.resolve()}?mode=ro"
        return create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(location, uri=True), future=True
        )
    if url.get_backend_name() == "postgresql":
        return create_engine(url, future=True, execution_options={"postgresql_readonly": True})
    raise JournalSourceError(
        f"{redacted(db_url)}: only SQLite and PostgreSQL trade databases are read "
        "(read-only access is guaranteed there)"
    )


def _check_schema(engine: Any, db_url: str) -> None:
    """Refuse a database whose tables are not the ones this Freqtrade reads (an older
    schema would need a migration, which is the bot's own business)."""
    from freqtrade.persistence import Order, Trade
    from sqlalchemy import inspect

    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    for model in (Trade, Order):
        table = model.__table__
        if table.name not in tables:
            raise JournalSourceError(
                f"{redacted(db_url)} has no {table.name} table: not a Freqtrade trade database"
            )
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing = sorted(set(table.columns.keys()) - present)
        if missing:
            raise JournalSourceError(
                f"{redacted(db_url)} has an older Freqtrade schema ({table.name} lacks "
                f"{', '.join(missing[:5])}): it is never migrated here",
                hint="start the bot once with this Freqtrade (it migrates its own database), "
                "or import a migrated copy",
            )


def journal_database(
    layout: UserDir,
    db_url: str,
    *,
    mode: str,
    strategy: str,
    model_uri: str | None = None,
    config_hash: str | None = None,
    name: str | None = None,
) -> Imported:
    """Record a paper or live bot's trades from its database (open ones too; run again
    later and they are brought up to date). The bot is named after the database unless
    ``name`` is given."""
    bot = BotInfo(
        name=name or f"{mode}/{strategy}/{Path(redacted(db_url).removeprefix('sqlite:///')).name}",
        mode=mode,
        strategy=strategy,
        composition=composition_of(layout, strategy),
        model_uri=model_uri,
        config_hash=config_hash,
        source=redacted(db_url),
    )
    trades = database_trades(db_url)  # read first: a bad source records no bot
    return import_trades(layout.journal, bot, trades)
