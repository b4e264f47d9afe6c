"""A small SQLite database of our own: opened with its schema, one transaction per use."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def open_database(
    path: Path, schema: str, *, timeout: float = 5.0, rows: bool = False
) -> Iterator[sqlite3.Connection]:
    """A connection to ``path`` (created with its folder when missing) whose ``schema``
    (idempotent ``CREATE ... IF NOT EXISTS`` statements) has been applied. What is done
    inside the ``with`` block is one transaction: committed on success, rolled back on an
    error; the connection is closed either way. ``rows``: rows as ``sqlite3.Row``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=timeout)
    if rows:
        connection.row_factory = sqlite3.Row
    try:
        connection.executescript(schema)
        with connection:
            yield connection
    finally:
        connection.close()
