"""The one exception hierarchy of Tradingbot.

Every error a user can cause (bad input, bad config, missing data) is a
:class:`TradingbotError`. Its message says what went wrong, where (file, row,
column) and how to fix it. The CLI prints the message and exits non-zero without
a traceback; a traceback means a bug in Tradingbot, not in the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class TradingbotError(Exception):
    """Base class of all errors caused by input, configuration or environment."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


class DataError(TradingbotError):
    """Market data that cannot be read or trusted.

    ``path`` names the file, ``line`` the 1-based line of a text file (the header
    is line 1) or the 0-based row of a binary frame, ``column`` the column.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        row: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.line = line
        self.row = row
        self.column = column
        where = []
        if self.path is not None:
            where.append(str(self.path))
        if line is not None:
            where.append(f"line {line}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, hint=hint)


class SpecError(TradingbotError):
    """An invalid configuration or specification file."""


class MissingDataError(TradingbotError):
    """Data that a command needs has not been imported yet."""


def validation_message(error: ValidationError) -> str:
    """A pydantic error as ``location: message`` pairs, e.g. ``features[0].rsi.windws: Extra inputs
    are not permitted``. A container's "too short" is dropped when one of its items failed."""
    items = error.errors()
    locations = [item["loc"] for item in items]
    lines = []
    for item in items:
        loc = item["loc"]
        if item["type"] == "too_short" and any(
            o[: len(loc)] == loc and o != loc for o in locations
        ):
            continue
        # list indices and union tags (``kind=jump``) read as subscripts
        location = "".join(
            f"[{p}]" if isinstance(p, int) or str(p).startswith("kind=") else f".{p}" for p in loc
        ).lstrip(".")
        lines.append(f"{location or '(top level)'}: {item['msg']}")
    return "; ".join(lines)
