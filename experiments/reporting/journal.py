"""The report's journal section: every bot, and closed positions by regime and by entry blocks."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Section:
    """One table of the report: its title, its cells as text, and its numeric columns."""

    title: str
    frame: pd.DataFrame
    numeric: set[str]


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "-"
        if isinstance(value, Decimal):
            return f"{value:,.2f}"
        if isinstance(value, float):
            return f"{value:.1%}"
        return str(value)

    return frame.map(cell) if not frame.empty else frame


def journal_sections(path: Path) -> list[Section]:
    """The journal's bots and its closed positions by regime at entry and by entry blocks;
    nothing when there is no journal yet."""
    if not path.exists():
        return []
    from strategies.journal_stats import bots, stats

    numbers = {"positions", "closed", "profit_abs", "winrate", "max_drawdown_abs", "trades"}
    numbers |= {"mean_ratio", "partials"}
    table = bots(path)
    sections = [Section("Trade journal: bots", _text(table), numbers)]
    for by, title in (("regime", "regime at entry"), ("block", "entry blocks")):
        grouped = stats(path, by=by)  # type: ignore[arg-type]
        sections.append(
            Section(f"Trade journal: closed positions by {title}", _text(grouped), numbers)
        )
    return sections
