"""Turn raw rows into trustworthy candles, and say exactly what was found.

Order of work: reject impossible values (an error: NaN/inf/non-positive prices,
negative or missing volume) -> sort ascending -> resolve duplicate timestamps by
the stated :class:`DuplicatePolicy` -> check the spacing against the timeframe
(an error when it does not match) -> report gaps -> flag bad ticks and OHLC
invariant violations -> optionally repair them and fill gaps, listing each change.

Nothing is ever dropped or invented silently: every removed duplicate, filled
candle and repaired value is counted and listed in the :class:`QualityReport`.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from common.errors import DataError
from features.candles import (
    CANDLE_COLUMNS,
    PRICE_COLUMNS,
    data_window,
    epoch_nanos,
)
from features.data.quality_report import (
    DuplicatePolicy,
    DuplicateReport,
    ExportSegment,
    Finding,
    Gap,
    GapReport,
    QualityOptions,
    QualityReport,
)
from features.data.readers import RawCandles
from features.data.repair import fill_gaps, repair_values
from features.timeframes import grid_offset_seconds, timeframe_to_seconds

__all__ = ["DuplicatePolicy", "QualityOptions", "QualityReport", "assess", "normalise"]


# No market is quoted above a trillion per unit nor trades 10^18 units in a candle; such
# values are corrupted numbers (1e300 once passed as a "bad tick" and made every
# drawdown 100%).
MAX_PRICE = 1e12
MAX_VOLUME = 1e18


def reject_impossible_values(raw: RawCandles) -> None:
    """Raise :class:`DataError` on the first NaN/inf/non-positive/absurd price or bad volume."""
    frame = raw.frame
    for column in (*PRICE_COLUMNS, "volume"):
        values = frame[column].to_numpy()
        problems = [
            (~np.isfinite(values) & np.isnan(values), "missing value (NaN)"),
            (np.isinf(values), "infinite value"),
        ]
        if column == "volume":
            problems.append((values < 0, "negative volume"))
            problems.append((values > MAX_VOLUME, f"volume above {MAX_VOLUME:.0e} (corrupted)"))
        else:
            problems.append((values <= 0, "non-positive price"))
            # a corrupted number, not a price: it would overflow returns and drawdowns
            problems.append((values > MAX_PRICE, f"price above {MAX_PRICE:.0e} (corrupted)"))
        for mask, what in problems:
            if mask.any():
                i = int(np.flatnonzero(mask)[0])
                source_row = int(frame["source_row"].iloc[i])
                raise DataError(
                    f"{what}: {float(values[i])!r}",
                    path=raw.path,
                    column=column,
                    hint="fix or remove the row in the source file",
                    **raw.where(source_row),
                )


def normalise(
    raw: RawCandles, timeframe: str, pair: str, options: QualityOptions | None = None
) -> tuple[pd.DataFrame, QualityReport]:
    """Validated, sorted, de-duplicated candles and the report of what was found."""
    options = options or QualityOptions()
    reject_impossible_values(raw)
    ordered = raw.frame.sort_values("date", kind="mergesort").reset_index(drop=True)
    exports, overlapping = _exports(ordered)
    candles, duplicates = _resolve_duplicates(ordered, options.duplicate_policy)
    _check_spacing(candles, timeframe, raw)
    report = _assess(candles[list(CANDLE_COLUMNS)], timeframe, pair, options)
    report.source = str(raw.path)
    report.format = raw.format
    report.rows_read = len(raw.frame)
    report.exports = exports
    report.overlapping_timestamps = overlapping
    report.time_mismatch = raw.time_mismatch
    report.duplicates = duplicates
    return _apply_changes(candles[list(CANDLE_COLUMNS)], report, timeframe, pair, options)


def assess(
    candles: pd.DataFrame, timeframe: str, pair: str, options: QualityOptions | None = None
) -> QualityReport:
    """Report gaps, bad ticks and invariant violations of already-stored candles."""
    return _assess(candles, timeframe, pair, options or QualityOptions())


def _exports(ordered: pd.DataFrame) -> tuple[list[ExportSegment], int]:
    segments = [
        ExportSegment(
            convention=str(name),
            rows=len(group),
            first=group["date"].iloc[0].to_pydatetime(),
            last=group["date"].iloc[-1].to_pydatetime(),
        )
        for name, group in ordered.groupby("export", sort=False)
    ]
    segments.sort(key=lambda s: s.first)
    if len(segments) < 2:
        return segments, 0
    per_date = ordered.groupby("date")["export"].nunique()
    return segments, int((per_date > 1).sum())


def _resolve_duplicates(
    ordered: pd.DataFrame, policy: DuplicatePolicy
) -> tuple[pd.DataFrame, DuplicateReport]:
    report = DuplicateReport(policy=policy)
    dup_mask = ordered["date"].duplicated(keep=False).to_numpy()
    if not dup_mask.any():
        return ordered, report
    dates = epoch_nanos(ordered["date"])
    precision = ordered["precision"].to_numpy()
    values = ordered[["open", "high", "low", "close", "volume"]].to_numpy()
    keep = ~dup_mask
    starts = np.flatnonzero(dup_mask & np.r_[True, dates[1:] != dates[:-1]])
    worst_diff, worst_date, conflicting = 0.0, None, 0
    for start in starts:
        stop = start + 1
        while stop < len(dates) and dates[stop] == dates[start]:
            stop += 1
        rows = np.arange(start, stop)
        if policy is DuplicatePolicy.FIRST:
            winner = rows[0]
        elif policy is DuplicatePolicy.LAST:
            winner = rows[-1]
        else:  # most precise, later row on ties (rows are in file order after a stable sort)
            winner = rows[::-1][np.argmax(precision[rows][::-1])]
        keep[winner] = True
        group_conflict = False
        for other in rows[rows != winner]:
            decimals = min(precision[winner], precision[other])
            a, b = values[winner], values[other]
            if decimals >= 0:
                a, b = np.round(a, decimals), np.round(b, decimals)
            if not np.array_equal(a[:4], b[:4]):
                group_conflict = True
                diff = float(
                    np.max(np.abs(values[winner, :4] - values[other, :4]) / values[winner, :4])
                )
                if diff > worst_diff:
                    worst_diff, worst_date = (
                        diff,
                        pd.Timestamp(dates[start], tz="UTC").to_pydatetime(),
                    )
        conflicting += group_conflict
    report.timestamps = len(starts)
    report.rows_removed = int((~keep).sum())
    report.conflicting = conflicting
    report.max_relative_price_difference = worst_diff
    report.worst = worst_date
    return ordered[keep].reset_index(drop=True), report


def _check_spacing(candles: pd.DataFrame, timeframe: str, raw: RawCandles) -> None:
    step = timeframe_to_seconds(timeframe) * 1_000_000_000
    nanos = epoch_nanos(candles["date"])
    off_grid = (nanos - grid_offset_seconds(timeframe) * 1_000_000_000) % step != 0
    diffs = np.diff(nanos)
    guess = _guess_timeframe(diffs)
    if off_grid.any():
        i = int(np.flatnonzero(off_grid)[0])
        raise DataError(
            f"candle at {candles['date'].iloc[i]} is not on the {timeframe} grid"
            + (f"; the candles look like {guess} data" if guess else ""),
            path=raw.path,
            column="date",
            hint=f"pass --timeframe {guess}" if guess else "check the file's timestamps",
            **raw.where(int(candles["source_row"].iloc[i])),
        )
    if len(diffs) and guess is not None and guess != timeframe:
        raise DataError(
            f"the most common spacing between candles is {guess}, not {timeframe}",
            path=raw.path,
            column="date",
            hint=f"pass --timeframe {guess}",
        )


def _guess_timeframe(diffs: np.ndarray) -> str | None:
    if not len(diffs):
        return None
    values, counts = np.unique(diffs, return_counts=True)
    seconds = int(values[np.argmax(counts)] // 1_000_000_000)
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _gaps(candles: pd.DataFrame, timeframe: str) -> GapReport:
    step = timeframe_to_seconds(timeframe) * 1_000_000_000
    nanos = epoch_nanos(candles["date"])
    missing = np.diff(nanos) // step - 1
    where = np.flatnonzero(missing > 0)
    gaps = [
        Gap(
            after=candles["date"].iloc[i].to_pydatetime(),
            before=candles["date"].iloc[i + 1].to_pydatetime(),
            missing=int(missing[i]),
        )
        for i in where
    ]
    return GapReport(
        count=len(gaps),
        missing_candles=int(missing[where].sum()) if len(where) else 0,
        longest=int(missing[where].max()) if len(where) else 0,
        longest_span=max((g.before - g.after for g in gaps), default=timedelta(0)),
        gaps=gaps,
    )


def _reference_close(candles: pd.DataFrame, neighbours: int) -> np.ndarray:
    """Median close of the neighbouring candles (both sides: this is data QA, not a feature)."""
    return (
        candles["close"].rolling(2 * neighbours + 1, center=True, min_periods=1).median().to_numpy()
    )


def _find_bad_ticks(candles: pd.DataFrame, options: QualityOptions) -> list[Finding]:
    reference = _reference_close(candles, options.bad_tick_neighbours)
    findings = []
    for column in PRICE_COLUMNS:
        values = candles[column].to_numpy()
        deviation = np.abs(np.log(values / reference))
        for i in np.flatnonzero(deviation > options.bad_tick_log_threshold):
            findings.append(
                Finding(
                    date=candles["date"].iloc[i].to_pydatetime(),
                    column=column,
                    value=float(values[i]),
                    reference=float(reference[i]),
                    reason=f"{values[i] / reference[i]:.2f}x the median close of its neighbours",
                )
            )
    findings.sort(key=lambda f: (f.date, PRICE_COLUMNS.index(f.column)))
    return findings


def _find_invariant_violations(candles: pd.DataFrame) -> list[Finding]:
    o, h, low, c = (candles[col].to_numpy() for col in PRICE_COLUMNS)
    findings = []
    high_bad = h < np.maximum.reduce([o, c, low])
    low_bad = low > np.minimum.reduce([o, c, h])
    for i in np.flatnonzero(high_bad):
        findings.append(
            Finding(
                date=candles["date"].iloc[i].to_pydatetime(),
                column="high",
                value=float(h[i]),
                reference=float(max(o[i], c[i], low[i])),
                reason="high is below open, close or low",
            )
        )
    for i in np.flatnonzero(low_bad):
        findings.append(
            Finding(
                date=candles["date"].iloc[i].to_pydatetime(),
                column="low",
                value=float(low[i]),
                reference=float(min(o[i], c[i], h[i])),
                reason="low is above open, close or high",
            )
        )
    findings.sort(key=lambda f: (f.date, f.column))
    return findings


def _assess(
    candles: pd.DataFrame, timeframe: str, pair: str, options: QualityOptions
) -> QualityReport:
    return QualityReport(
        rows_read=len(candles),
        duplicates=DuplicateReport(policy=options.duplicate_policy),
        gaps=_gaps(candles, timeframe),
        bad_ticks=_find_bad_ticks(candles, options),
        invariant_violations=_find_invariant_violations(candles),
        window=data_window(candles, pair, timeframe),
    )


def _apply_changes(
    candles: pd.DataFrame,
    report: QualityReport,
    timeframe: str,
    pair: str,
    options: QualityOptions,
) -> tuple[pd.DataFrame, QualityReport]:
    candles = candles.reset_index(drop=True).copy()
    if options.repair:
        report.repairs = repair_values(candles, report)
    if options.fill_gaps and report.gaps.count:
        candles, report.filled_candles = fill_gaps(candles, timeframe)
    report.window = data_window(candles, pair, timeframe)
    return candles, report
