"""What an import found and did: duplicates, gaps, bad ticks, repairs, as one report."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from features.candles import (
    DataWindow,
)
from features.data.readers import TimeMismatch


class DuplicatePolicy(StrEnum):
    """Which row wins when several rows share a timestamp.

    ``most-precise`` (default): the row whose prices carry the most decimals
    (e.g. a full-precision export beats a rounded one); among equals, the later
    row in the file. ``first`` / ``last``: the first / last row in file order.
    """

    MOST_PRECISE = "most-precise"
    FIRST = "first"
    LAST = "last"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExportSegment(_Model):
    """Rows written with one timestamp convention: one export of a concatenated file."""

    convention: str
    rows: int
    first: datetime
    last: datetime


class DuplicateReport(_Model):
    policy: DuplicatePolicy
    timestamps: int = 0  # timestamps that occur more than once
    rows_removed: int = 0
    conflicting: int = 0  # timestamps whose rows disagree beyond rounding
    max_relative_price_difference: float = 0.0
    worst: datetime | None = None


class Gap(_Model):
    after: datetime  # last candle before the gap
    before: datetime  # first candle after the gap
    missing: int


class GapReport(_Model):
    count: int = 0
    missing_candles: int = 0
    longest: int = 0  # most missing candles in one gap
    longest_span: timedelta = timedelta(0)  # time from the candle before to the one after
    gaps: list[Gap] = Field(default_factory=list)


class Finding(_Model):
    """A suspicious value: a bad tick or an OHLC invariant violation."""

    date: datetime
    column: str
    value: float
    reference: float
    reason: str


class Repair(_Model):
    date: datetime
    column: str
    old: float
    new: float
    reason: str


class QualityOptions(_Model):
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.MOST_PRECISE
    fill_gaps: bool = False
    repair: bool = False
    # A price is a bad tick when |log(price / median close of its neighbours)|
    # exceeds this (0.5 = 65% above or 39% below). Crypto crashes move less than
    # this within a few candles; broken ticks move far more.
    bad_tick_log_threshold: float = 0.5
    bad_tick_neighbours: int = 5  # candles on each side for the reference median


class QualityReport(_Model):
    """Everything found in (and done to) one candle series."""

    source: str | None = None
    format: str | None = None
    rows_read: int
    exports: list[ExportSegment] = Field(default_factory=list)
    overlapping_timestamps: int = 0  # timestamps present in more than one export
    time_mismatch: TimeMismatch | None = None
    duplicates: DuplicateReport
    gaps: GapReport
    bad_ticks: list[Finding] = Field(default_factory=list)
    invariant_violations: list[Finding] = Field(default_factory=list)
    repairs: list[Repair] = Field(default_factory=list)
    filled_candles: list[datetime] = Field(default_factory=list)
    window: DataWindow
