"""open_database: schema applied, one transaction per use, closed either way."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from common.sqlite import open_database

SCHEMA = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);"


def test_a_failing_block_writes_nothing_and_a_good_one_commits(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "notes.sqlite"  # the folder is created
    with pytest.raises(ValueError, match="half-way"), open_database(path, SCHEMA) as db:
        db.execute("INSERT INTO notes (text) VALUES ('first')")
        raise ValueError("half-way")
    with open_database(path, SCHEMA, rows=True) as db:
        assert db.execute("SELECT COUNT(*) AS n FROM notes").fetchone()["n"] == 0
        db.execute("INSERT INTO notes (text) VALUES ('kept')")
    with open_database(path, SCHEMA) as db:
        assert db.execute("SELECT text FROM notes").fetchall() == [("kept",)]
    with pytest.raises(sqlite3.ProgrammingError):
        db.execute("SELECT 1")  # closed after the block
