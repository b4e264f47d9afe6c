"""The normalised candle frame and its :class:`DataWindow`.

A candle frame has exactly the columns ``date, open, high, low, close, volume``:
``date`` is the candle's *open* time as ``datetime64[ns, UTC]`` (Freqtrade's
convention), strictly ascending; prices are float64 in quote currency, volume is
float64 in base currency. This is the frame every later stage consumes.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from common.errors import DataError

CANDLE_COLUMNS: tuple[str, ...] = ("date", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")


class DataWindow(BaseModel):
    """Which candles a result was computed from: the lineage of every run.

    ``sha256`` is the hash of the normalised candles (see :func:`candles_sha256`),
    so two windows with the same hash hold bit-identical candles.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pair: str
    timeframe: str
    first: datetime
    last: datetime
    rows: int
    sha256: str

    @field_validator("first", "last")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None or value.utcoffset().total_seconds():  # type: ignore[union-attr]
            raise ValueError("DataWindow dates must be timezone-aware UTC")
        return value


def epoch_nanos(dates: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch of a UTC datetime Series, whatever its resolution."""
    return dates.to_numpy(dtype="datetime64[ns]").view("int64")


def candles_sha256(candles: pd.DataFrame) -> str:
    """sha256 of a candle frame, independent of how it was stored.

    Hashed bytes: the open times as little-endian int64 milliseconds since the
    epoch, then the ``open, high, low, close, volume`` values as a row-major
    little-endian float64 array of shape (rows, 5).
    """
    dates_ms = epoch_nanos(candles["date"]) // 1_000_000
    values = candles.loc[:, ["open", "high", "low", "close", "volume"]].to_numpy(dtype="<f8")
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(dates_ms, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def data_window(candles: pd.DataFrame, pair: str, timeframe: str) -> DataWindow:
    """The :class:`DataWindow` of a non-empty, normalised candle frame."""
    if candles.empty:
        raise DataError(f"no candles for {pair} {timeframe}")
    return DataWindow(
        pair=pair,
        timeframe=timeframe,
        first=candles["date"].iloc[0].to_pydatetime(),
        last=candles["date"].iloc[-1].to_pydatetime(),
        rows=len(candles),
        sha256=candles_sha256(candles),
    )


def validate_candles(candles: pd.DataFrame, *, source: str = "candles") -> pd.DataFrame:
    """Check the frame contract and return it with canonical dtypes.

    Raises :class:`DataError` naming the column and the row on the first breach.
    """
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}", path=source)
    index = candles.index
    if tuple(candles.columns) == CANDLE_COLUMNS and index.equals(pd.RangeIndex(len(candles))):
        # already in canonical layout (every live step): a shallow, copy-on-write copy is enough
        frame = candles.copy(deep=False)
    else:
        frame = candles.loc[:, list(CANDLE_COLUMNS)].reset_index(drop=True)
    dates = frame["date"]
    if not isinstance(dates.dtype, pd.DatetimeTZDtype) or str(dates.dtype.tz) != "UTC":
        raise DataError("column 'date' must be timezone-aware UTC", path=source, column="date")
    if dates.dtype.unit != "ns":
        frame["date"] = dates.astype("datetime64[ns, UTC]")
    for column in ("open", "high", "low", "close", "volume"):
        if frame[column].dtype != "float64":  # the common case needs no conversion (live path)
            frame[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
    if len(frame) > 1:
        steps = np.diff(epoch_nanos(frame["date"]))
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            raise DataError(
                "dates are not strictly ascending", path=source, row=int(bad[0]) + 1, column="date"
            )
    return frame
