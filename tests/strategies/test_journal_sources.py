"""`journal sync` only reads a bot's trade database: never creates, migrates or updates it."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from common.layout import UserDir
from strategies.journal_sources import JournalSourceError, journal_database, redacted


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def bot_database(tmp_path: Path) -> Path:
    """A trade database as a running bot of this Freqtrade leaves it (current schema)."""
    from freqtrade.persistence import Trade, init_db

    path = tmp_path / "tradesv3.dryrun.sqlite"
    init_db(f"sqlite:///{path}")
    Trade.session.remove()
    Trade.session.get_bind().dispose()
    return path


def test_a_bot_database_is_read_and_left_byte_for_byte(tmp_path: Path, bot_database: Path) -> None:
    before = _digest(bot_database)
    done = journal_database(
        UserDir(tmp_path / "ud"), f"sqlite:///{bot_database}", mode="paper", strategy="S"
    )
    assert done.added == 0
    assert _digest(bot_database) == before
    wal = bot_database.with_name(bot_database.name + "-wal")  # a WAL reader's files, if any
    assert not wal.exists() or wal.stat().st_size == 0  # nothing was written


def test_a_missing_source_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "tradesv3.dryrn.sqlite"
    with pytest.raises(JournalSourceError, match="no trade database at"):
        journal_database(UserDir(tmp_path / "ud"), f"sqlite:///{typo}", mode="paper", strategy="S")
    assert not typo.exists()
    assert not (tmp_path / "ud").exists()  # no journal, no phantom bot


def test_an_old_schema_is_refused_never_migrated(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE trades (id INTEGER PRIMARY KEY, pair TEXT)")
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, ft_trade_id INTEGER)")
    before = _digest(old)
    with pytest.raises(JournalSourceError, match="older Freqtrade schema"):
        journal_database(UserDir(tmp_path / "ud"), f"sqlite:///{old}", mode="paper", strategy="S")
    assert _digest(old) == before
    with sqlite3.connect(old) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "trades_bak0" not in tables


def test_a_corrupt_source_is_a_sentence_not_a_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x00not a database\xff" * 100)
    with pytest.raises(JournalSourceError, match=r"cannot be read|no trades table"):
        journal_database(
            UserDir(tmp_path / "ud"), f"sqlite:///{garbage}", mode="paper", strategy="S"
        )


def test_a_password_in_a_database_url_is_never_shown() -> None:
    assert "s3cret" not in redacted("postgresql://bot:s3cret@db:5432/trades")
    assert redacted("sqlite:////tmp/x.sqlite") == "sqlite:////tmp/x.sqlite"
