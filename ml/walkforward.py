"""Walk-forward folds: train on the past, test on the next block, never the reverse.

Rows are candles in time order. The last ``folds * test_size`` rows are split
into consecutive test blocks. Each fold trains on the rows before its test block
(all of them: ``expanding``; the last ``train_size``: ``rolling``), minus an
embargo of ``embargo`` rows (at least the target horizon) between the end of
training and the start of the test block, so that no training target reaches
into the test window.

With ``start`` (a date) and ``test_days`` the blocks are fixed in calendar time
instead: they begin at ``start`` and every ``test_days`` after it (at most
``folds`` of them; the last one ends with the data). Then a fold's training rows
and refit date do not depend on where the data ends, so any decision can be
recomputed from the candles up to its date and comes out the same.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field


class WalkForwardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Literal["expanding", "rolling"] = "expanding"
    folds: int = Field(default=4, ge=1, le=100)
    test_size: int | None = Field(default=None, ge=10)  # default: 40% of the rows / folds
    # the test block in days instead of candles: the same schedule on any timeframe
    test_days: float | None = Field(default=None, gt=0, le=3650)
    # the first test day (YYYYMMDD): blocks fixed in calendar time (needs test_days)
    start: str | None = Field(default=None, pattern=r"^\d{8}$")
    train_size: int | None = Field(default=None, ge=50)  # rolling only; default: first train size
    embargo: int | None = Field(default=None, ge=0)  # default: the target horizon


class Fold(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    train_start: int
    train_end: int  # exclusive
    test_start: int
    test_end: int  # exclusive


def make_folds(
    rows: int,
    spec: WalkForwardSpec,
    horizon: int,
    candles_per_day: float | None = None,
    dates: NDArray[np.datetime64] | None = None,
) -> list[Fold]:
    """The folds of ``rows`` candles; ``candles_per_day`` converts ``test_days``;
    ``dates`` (the candles' open times) place calendar blocks (``start``)."""
    embargo = max(horizon, spec.embargo if spec.embargo is not None else horizon)
    if spec.start is not None:
        return _calendar_folds(rows, spec, embargo, dates)
    if spec.test_size is not None and spec.test_days is not None:
        raise ValueError("give walk_forward.test_size or test_days, not both")
    if spec.test_days is not None:
        if candles_per_day is None:
            raise ValueError("walk_forward.test_days needs the candles' timeframe")
        test_size = max(10, round(spec.test_days * candles_per_day))
    else:
        test_size = spec.test_size or max(10, int(rows * 0.4) // spec.folds)
    first_test = rows - spec.folds * test_size
    if first_test - embargo < 50:
        raise ValueError(
            f"{rows} rows are too few for {spec.folds} folds of {test_size} test rows "
            f"with an embargo of {embargo}: reduce folds or test_size"
        )
    train_size = spec.train_size or (first_test - embargo)
    folds = []
    for i in range(spec.folds):
        test_start = first_test + i * test_size
        train_end = test_start - embargo
        train_start = 0 if spec.scheme == "expanding" else max(0, train_end - train_size)
        folds.append(
            Fold(
                index=i,
                train_start=train_start,
                train_end=train_end,
                test_start=test_start,
                test_end=test_start + test_size,
            )
        )
    return folds


def _calendar_folds(
    rows: int, spec: WalkForwardSpec, embargo: int, dates: NDArray[np.datetime64] | None
) -> list[Fold]:
    if spec.start is None or spec.test_days is None or spec.test_size is not None:
        raise ValueError("walk_forward.start needs test_days (and no test_size)")
    if dates is None or len(dates) != rows:
        raise ValueError("walk_forward.start needs the candles' dates")
    stamps = np.asarray(dates).astype("datetime64[ns]").astype("int64")
    day = spec.start
    first = int(np.datetime64(f"{day[:4]}-{day[4:6]}-{day[6:]}", "ns").astype("int64"))
    step = round(spec.test_days * 86_400 * 1e9)
    folds: list[Fold] = []
    for index in range(spec.folds):
        begin, end = first + index * step, first + (index + 1) * step
        test_start = int(np.searchsorted(stamps, begin, side="left"))
        test_end = int(np.searchsorted(stamps, end, side="left"))
        if test_start >= rows:
            break
        train_end = test_start - embargo
        if train_end < 50:
            raise ValueError(
                f"only {max(train_end, 0)} candles to train on before the walk-forward start "
                f"{spec.start}: move it later or import older candles"
            )
        train_size = spec.train_size or train_end
        train_start = 0 if spec.scheme == "expanding" else max(0, train_end - train_size)
        folds.append(
            Fold(
                index=index,
                train_start=train_start,
                train_end=train_end,
                test_start=test_start,
                test_end=test_end,
            )
        )
    if not folds:
        raise ValueError(f"no candles after the walk-forward start {spec.start}")
    return folds
