"""Freqtrade's timeranges (``YYYYMMDD-YYYYMMDD``, UTC, end exclusive) and the candles
inside one."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from common.errors import SpecError


class TimeRange(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def parse(cls, text: str | None) -> TimeRange:
        """Freqtrade's ``YYYYMMDD-YYYYMMDD`` (either side may be empty), UTC, end exclusive."""
        if not text:
            return cls()
        parts = text.split("-")
        if len(parts) != 2:
            raise SpecError(
                f"invalid timerange {text!r}",
                hint="write it as YYYYMMDD-YYYYMMDD, e.g. 20180101-20200101",
            )

        def day(value: str) -> datetime | None:
            if not value:
                return None
            try:
                return datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)
            except ValueError:
                raise SpecError(
                    f"invalid date {value!r} in timerange {text!r}", hint="dates are YYYYMMDD"
                ) from None

        start, end = day(parts[0]), day(parts[1])
        if start and end and start >= end:
            raise SpecError(f"timerange {text!r} ends before it starts")
        return cls(start=start, end=end)

    def __str__(self) -> str:
        fmt = "%Y%m%d"
        return f"{self.start.strftime(fmt) if self.start else ''}-{self.end.strftime(fmt) if self.end else ''}"


def select_candles(candles: pd.DataFrame, timerange: TimeRange) -> pd.DataFrame:
    """The candles inside ``timerange`` (start inclusive, end exclusive), re-indexed."""
    mask = np.ones(len(candles), dtype=bool)
    if timerange.start is not None:
        mask &= (candles["date"] >= pd.Timestamp(timerange.start)).to_numpy()
    if timerange.end is not None:
        mask &= (candles["date"] < pd.Timestamp(timerange.end)).to_numpy()
    return candles[mask].reset_index(drop=True)
