"""``tradingbot journal``: every bot's positions, partial exits and statistics.

Each command parses its options, calls one function of :mod:`strategies.journal_stats`
or :mod:`strategies.journal_sources`, and renders a table.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from common.layout import UserDir
from tradingbot._app import Userdir, app, console

journal_app = typer.Typer(
    rich_markup_mode=None,
    help="The trade journal: positions with partial exits, from backtests, paper and live.",
    no_args_is_help=True,
)
app.add_typer(journal_app, name="journal")
Bot = Annotated[str | None, typer.Option("--bot", help="One bot (see: tradingbot journal bots).")]


SIZES = {"amount", "remaining", "entry amount"}  # in the base currency: every decimal counts


def _cell(value: object, column: str = "") -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, Decimal):
        return f"{value:.8f}".rstrip("0").rstrip(".") if column in SIZES else f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, pd.Timestamp) or hasattr(value, "isoformat"):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]
    return str(value)


WRAPPED = {"bot", "entry", "reason", "exit", "block", "strategy", "model"}


def _table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        wraps = str(column) in WRAPPED
        table.add_column(
            str(column), overflow="fold", no_wrap=not wraps, min_width=12 if wraps else None
        )
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(v, str(c)) for c, v in zip(frame.columns, row, strict=True)))
    return table


def _journal(userdir: Path) -> Path:
    path = UserDir(userdir).journal
    if not path.exists():
        from strategies.journal import JournalError

        raise JournalError(
            f"no journal at {path} yet",
            hint="backtests and paper replays fill it; tradingbot journal sync reads a bot's "
            "trade database",
        )
    return path


@journal_app.command("bots")
def journal_bots(userdir: Userdir = Path("user_data")) -> None:
    """Every bot (a backtest, a paper or live database) with its latest performance."""
    from strategies.journal_stats import bots

    console.print(_table(bots(_journal(userdir)), "bots"))


@journal_app.command("list")
def journal_list(
    bot: Bot = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 30,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Positions, newest first."""
    from strategies.journal_stats import positions

    frame = positions(_journal(userdir), bot)
    console.print(_table(frame.head(limit), f"positions ({len(frame)})"))


@journal_app.command("show")
def journal_show(
    position_id: Annotated[int, typer.Argument(help="A position's id (journal list).")],
    userdir: Userdir = Path("user_data"),
) -> None:
    """One position with every exit: size, remaining, price, fee, profit."""
    from strategies.journal_stats import position

    fields, exits = position(_journal(userdir), position_id)
    for name, value in fields.items():
        console.print(f"{name:>16}: {_cell(value, name)}")
    console.print(_table(exits, "exits"))


@journal_app.command("stats")
def journal_stats(
    bot: Bot = None,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Group by: regime (at entry), block (entry blocks), exit."),
    ] = None,
    all_bots: Annotated[
        bool,
        typer.Option(
            "--all-bots",
            help="Add every bot up (each distinct set of trades once); default: per bot.",
        ),
    ] = False,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Closed positions' trades, win rate and profit per bot, overall or grouped."""
    from strategies.journal_stats import GROUPS, stats

    if by is not None and by not in GROUPS:
        raise typer.BadParameter(f"one of {', '.join(GROUPS)}", param_hint="--by")
    frame = stats(_journal(userdir), bot, by, pooled=all_bots)  # type: ignore[arg-type]
    scope = "all bots added up" if all_bots else "per bot"
    console.print(_table(frame, f"closed positions {f'by {by}, ' if by else ''}{scope}"))


@journal_app.command("sync")
def journal_sync(
    strategy: Annotated[str, typer.Option("--strategy", help="The bot's strategy class.")],
    db_url: Annotated[
        str | None,
        typer.Option("--db-url", help="Freqtrade trade database (default: the paper bot's)."),
    ] = None,
    live: Annotated[bool, typer.Option("--live", help="The live bot's database.")] = False,
    userdir: Userdir = Path("user_data"),
) -> None:
    """Read a paper or live bot's trade database into the journal (run it from cron: open
    positions are brought up to date, nothing is added twice)."""
    from strategies.journal_sources import journal_database

    default = UserDir(userdir).trades_db(live=live)
    url = db_url or f"sqlite:///{default.resolve()}"
    if db_url is None and not default.exists():
        raise typer.BadParameter(f"{default} does not exist", param_hint="--db-url")
    done = journal_database(
        UserDir(userdir), url, mode="live" if live else "paper", strategy=strategy
    )
    console.print(
        f"{done.bot}: {done.added} added, {done.updated} updated, {done.unchanged} unchanged"
    )
