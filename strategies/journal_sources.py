"""Where the journal's trades come from: Freqtrade's own results, read as Freqtrade wrote them.

* a backtest: the trades of its result zip (with their orders);
* a paper or live bot: its trade database, read through Freqtrade's own models
  (``Trade.to_json``), so profits are Freqtrade's, never recomputed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.layout import UserDir
from strategies.composition import Composition, compositions_in
from strategies.journal import BotInfo, Imported, import_trades
from strategies.results import parse_result_zip


def composition_of(userdir: Path, strategy: str) -> dict[str, Any] | None:
    """The composition a composed strategy traded with (from the user dir), as JSON."""
    found: Composition | None = compositions_in(UserDir(userdir).strategies).get(strategy)
    return found.model_dump(mode="json") if found else None


def journal_backtest(
    userdir: Path,
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
        composition=composition_of(userdir, strategy),
        model_uri=model_uri,
        model_version=model_version,
        config_hash=config_hash,
        source=str(result_zip),
    )
    return import_trades(UserDir(userdir).journal, bot, trades.to_dict("records"))


def database_trades(db_url: str) -> list[dict[str, Any]]:
    """Every trade of a Freqtrade trade database, as ``Trade.to_json`` gives them."""
    from freqtrade.persistence import Trade, init_db
    from sqlalchemy import select

    init_db(db_url)
    try:
        return [trade.to_json() for trade in Trade.session.scalars(select(Trade)).all()]
    finally:
        Trade.session.remove()


def journal_database(
    userdir: Path,
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
        name=name or f"{mode}/{strategy}/{Path(db_url.removeprefix('sqlite:///')).name}",
        mode=mode,
        strategy=strategy,
        composition=composition_of(userdir, strategy),
        model_uri=model_uri,
        config_hash=config_hash,
        source=db_url,
    )
    return import_trades(UserDir(userdir).journal, bot, database_trades(db_url))
