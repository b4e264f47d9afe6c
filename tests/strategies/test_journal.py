"""The trade journal: positions with every partial exit, from Freqtrade's own results;
idempotent imports, all-or-nothing writes, and migrations that never drop a journal."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.layout import UserDir
from experiments.backtesting.run import backtest
from ml.tracking import default_tracking_uri
from strategies.journal import (
    SCHEMA_VERSION,
    BotInfo,
    JournalError,
    Position,
    import_trades,
    session,
)
from strategies.journal_sources import journal_backtest
from strategies.journal_stats import bots, stats
from strategies.results import parse_result_zip
from tests.conftest import CliResult, import_synthetic, local_context

CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def backtested(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real Freqtrade backtest of a composition that takes partial exits."""
    userdir = tmp_path_factory.mktemp("journal") / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=2600, seed=11)
    summary = backtest(
        strategy="TrendPullbackStrategy",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        timerange="",
        model=None,
        context=local_context(userdir, default_tracking_uri(userdir)),
    )
    trades = parse_result_zip(summary.result_zip, "TrendPullbackStrategy").trades
    return {"userdir": userdir, "summary": summary, "trades": trades}


def test_a_backtest_is_journalled_with_every_partial_exit(backtested: dict[str, Any]) -> None:
    summary, trades = backtested["summary"], backtested["trades"]
    assert summary.journalled is not None and summary.journalled.added == len(trades)
    assert list(summary.per_regime["regime"]) == ["unknown"]  # no model, no regime in tags
    with session(UserDir(backtested["userdir"]).journal) as db:
        positions = db.scalars(select(Position)).all()
        assert len(positions) == len(trades)
        by_open = {p.open_date: p for p in positions}
        partial = 0
        for trade in trades.itertuples():
            position = by_open[trade.open_date.to_pydatetime()]
            exits = position.exits
            partial += len(exits) > 1
            # the exits' sizes sum to the entry size; the last leaves nothing
            assert sum(e.amount for e in exits) == position.entry_amount
            assert exits[-1].remaining == 0 and [e.sequence for e in exits] == list(
                range(1, len(exits) + 1)
            )
            # Freqtrade's profit, to the cent, and the exits' shares add up to it
            ft_profit = Decimal(str(trade.profit_abs)).quantize(CENT)
            assert position.profit_abs is not None
            assert position.profit_abs.quantize(CENT) == ft_profit
            assert sum(e.profit_abs for e in exits).quantize(CENT) == ft_profit
            assert position.exit_reason == trade.exit_reason
            assert position.entry_blocks == "trend_filter+rsi_bollinger+volume_confirmation"
        assert partial >= 1  # the take-profit ladder sold part of a position
        ladder = [e for p in positions for e in p.exits if e.reason == "take_profit_ladder"]
        assert ladder and all(e.remaining > 0 for e in ladder)
        bot = positions[0].bot
        assert bot.mode == "backtest" and bot.config_hash == summary.result_zip.parent.name
        assert bot.composition is not None and '"take_profit_ladder"' in bot.composition


def test_reimporting_the_same_results_adds_nothing(backtested: dict[str, Any]) -> None:
    userdir, summary = backtested["userdir"], backtested["summary"]
    snapshots_before = len(bots(UserDir(userdir).journal))
    again = journal_backtest(UserDir(userdir), summary.result_zip, "TrendPullbackStrategy")
    assert (again.added, again.updated) == (0, 0)
    assert again.unchanged == len(backtested["trades"])
    assert len(bots(UserDir(userdir).journal)) == snapshots_before
    total = stats(UserDir(userdir).journal)
    assert int(total["trades"].iloc[0]) == len(backtested["trades"])


def test_a_bad_trade_writes_nothing(tmp_path: Path, backtested: dict[str, Any]) -> None:
    records = backtested["trades"].to_dict("records")
    broken = dict(records[1])
    del broken["open_rate"]
    path = tmp_path / "journal.sqlite"
    bot = BotInfo(name="b", mode="backtest", strategy="TrendPullbackStrategy")
    with pytest.raises(KeyError, match="open_rate"):
        import_trades(path, bot, [records[0], broken])
    with session(path) as db:
        assert db.scalars(select(Position)).all() == []
    with pytest.raises(JournalError, match="mode 'sim'"):
        import_trades(path, BotInfo(name="c", mode="sim", strategy="x"), records)


def test_an_open_position_is_brought_up_to_date(tmp_path: Path, backtested: dict[str, Any]) -> None:
    laddered = [r for r in backtested["trades"].to_dict("records") if len(r["orders"]) > 2]
    record = dict(laddered[0])  # open after its first partial exit, then closed
    opened = {**record, "is_open": True, "orders": record["orders"][:2]}
    path = tmp_path / "journal.sqlite"
    bot = BotInfo(name="paper/x", mode="paper", strategy="TrendPullbackStrategy")
    assert import_trades(path, bot, [opened]).added == 1
    with session(path) as db:
        (position,) = db.scalars(select(Position)).all()
        assert position.is_open and [e.remaining > 0 for e in position.exits] == [True]
    done = import_trades(path, bot, [record])
    assert (done.added, done.updated) == (0, 1)
    with session(path) as db:
        (position,) = db.scalars(select(Position)).all()
        assert not position.is_open and position.exits[-1].remaining == 0
        assert len(position.exits) == len(record["orders"]) - 1


# The schema of version 1, as it was first released, kept to test its migration.
SCHEMA_V1 = """
CREATE TABLE bots (id INTEGER PRIMARY KEY, name VARCHAR(200) UNIQUE, mode VARCHAR(20),
  strategy VARCHAR(100), composition VARCHAR, model_uri VARCHAR, model_version VARCHAR,
  config_hash VARCHAR, source VARCHAR, created_at DATETIME);
CREATE TABLE positions (id INTEGER PRIMARY KEY, bot_id INTEGER REFERENCES bots(id),
  pair VARCHAR(40), is_open BOOLEAN, open_date DATETIME, close_date DATETIME,
  entry_price VARCHAR(40), entry_amount VARCHAR(40), stake_amount VARCHAR(40),
  entry_tag VARCHAR, entry_blocks VARCHAR, regime_entry VARCHAR, exit_reason VARCHAR,
  profit_abs VARCHAR(40), profit_ratio FLOAT, UNIQUE (bot_id, pair, open_date));
CREATE TABLE exits (id INTEGER PRIMARY KEY, position_id INTEGER REFERENCES positions(id),
  sequence INTEGER, date DATETIME, amount VARCHAR(40), remaining VARCHAR(40),
  price VARCHAR(40), fee VARCHAR(40), profit_abs VARCHAR(40), reason VARCHAR,
  UNIQUE (position_id, sequence));
CREATE TABLE snapshots (id INTEGER PRIMARY KEY, bot_id INTEGER REFERENCES bots(id),
  taken_at DATETIME, positions INTEGER, closed INTEGER, profit_abs VARCHAR(40),
  winrate FLOAT);
INSERT INTO bots VALUES (1, 'live/RegimeStrategy/tradesv3.sqlite', 'live', 'RegimeStrategy',
  NULL, NULL, NULL, NULL, NULL, '2026-06-01 00:00:00.000000');
INSERT INTO positions VALUES (1, 1, 'BTC/USDT', 0, '2026-06-01 10:00:00.000000',
  '2026-06-02 10:00:00.000000', '60000', '0.01', '600', 'bull|model_probability', 'model_probability',
  'bull', 'roi', '12.34567891', 0.0205);
INSERT INTO exits VALUES (1, 1, 1, '2026-06-02 10:00:00.000000', '0.01', '0', '61300', '0.613',
  '12.34567891', 'roi');
INSERT INTO snapshots VALUES (1, 1, '2026-06-02 11:00:00.000000', 1, 1, '12.34567891', 1.0);
PRAGMA user_version = 1;
"""


def test_an_older_journal_is_migrated_never_dropped(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_V1)
    db.close()
    table = bots(path)  # opening migrates
    assert table["profit_abs"].iloc[0] == Decimal("12.34567891")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    assert (tmp_path / "journal.sqlite.v1.bak").exists()  # the old file, kept
    with session(path) as db2:
        (position,) = db2.scalars(select(Position)).all()
        assert position.exit_block is None and position.exits[0].profit_abs == Decimal(
            "12.34567891"
        )
        assert position.open_date.tzinfo is not None
    # a journal from a newer release is left alone
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(JournalError, match="newer than this version"):
        bots(path)
    assert path.read_bytes() == before


def test_journal_commands(cli: Callable[..., CliResult], backtested: dict[str, Any]) -> None:
    userdir = backtested["userdir"]
    listed = cli("journal", "list", "--userdir", userdir)
    assert listed.code == 0 and f"positions ({len(backtested['trades'])})" in listed.out
    by_exit = cli("journal", "stats", "--by", "exit", "--userdir", userdir)
    assert by_exit.code == 0 and "time_stop" in by_exit.out
    shown = cli("journal", "show", "1", "--userdir", userdir)
    assert shown.code == 0 and "exits" in shown.out and "entry amount" in shown.out
    missing = cli("journal", "show", "999", "--userdir", userdir)
    assert missing.code == 2 and "no position 999" in missing.err
    wrong = cli("journal", "stats", "--by", "moon", "--userdir", userdir)
    assert wrong.code == 2
    nothing = cli("journal", "list", "--userdir", userdir / "elsewhere")
    assert nothing.code == 2 and "no journal" in nothing.err
    # bots: the backtest's cache key shortened, the window its positions span; --bot
    # takes the shortened name (before: 64-character hashes and no window, unreadable)
    table = bots(UserDir(userdir).journal)
    name = table["bot"].iloc[0]
    assert len(name.rsplit("/", 1)[1]) == 8 and re.fullmatch(
        r"\d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d", table["window"].iloc[0]
    )
    by_short_name = cli("journal", "list", "--bot", name, "--userdir", userdir)
    assert (
        by_short_name.code == 0 and f"positions ({len(backtested['trades'])})" in by_short_name.out
    )
    unknown = cli("journal", "list", "--bot", "backtest/Nope", "--userdir", userdir)
    assert unknown.code == 2 and "no bot named 'backtest/Nope'" in unknown.err


def test_statistics_are_per_bot_and_an_identical_import_counts_once(
    backtested: dict[str, Any], cli: Callable[..., CliResult]
) -> None:
    """Before: `journal stats` added every bot up, the same backtest imported twice
    included."""
    userdir, summary = backtested["userdir"], backtested["summary"]
    journal_backtest(UserDir(userdir), summary.result_zip, "TrendPullbackStrategy", mode="paper")
    per_bot = stats(UserDir(userdir).journal)
    assert len(per_bot) >= 2 and set(per_bot["trades"]) == {len(backtested["trades"])}
    pooled = stats(UserDir(userdir).journal, pooled=True)
    assert pooled["bot"].tolist() == ["all bots"]
    assert int(pooled["trades"].iloc[0]) == len(backtested["trades"])
    shown = cli("journal", "stats", "--all-bots", "--userdir", userdir)
    assert shown.code == 0 and "all bots added up" in shown.out
