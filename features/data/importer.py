"""`tradingbot data import` and `tradingbot data check` as library functions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from common.errors import DataError, SpecError
from common.layout import UserDir
from features.data.quality import QualityOptions, QualityReport, assess, normalise
from features.data.readers import read_raw
from features.data.store import candles_path, load_candles, report_path, write_candles
from features.timeframes import timeframe_to_seconds

ImportOptions = QualityOptions

_PAIR = re.compile(r"^[A-Z0-9]+/[A-Z0-9]+(:[A-Z0-9]+)?$")


# quote currencies, longest first, to read BTCUSDT as BTC/USDT in a hint
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")


def check_pair(pair: str) -> str:
    if not _PAIR.match(pair):
        upper = pair.upper().replace("-", "").replace("_", "")
        quote = next((q for q in _QUOTES if upper.endswith(q) and len(upper) > len(q)), None)
        guess = f"{upper[: -len(quote)]}/{quote}" if quote else "BTC/USDT"
        raise SpecError(
            f"invalid pair {pair!r}: write it as BASE/QUOTE", hint=f"did you mean {guess}?"
        )
    return pair


@dataclass(frozen=True)
class ImportResult:
    report: QualityReport
    candles_path: Path
    report_path: Path


def import_candles(
    source: Path,
    *,
    pair: str,
    timeframe: str,
    exchange: str,
    layout: UserDir,
    options: ImportOptions | None = None,
) -> ImportResult:
    """Read ``source``, normalise it, write it in Freqtrade's layout with its report.

    Nothing is written when any check fails: the error names the file, row and column.
    """
    check_pair(pair)
    timeframe_to_seconds(timeframe)
    raw = read_raw(source, pair=pair)
    candles, report = normalise(raw, timeframe, pair, options)
    target = candles_path(layout, exchange, pair, timeframe)
    sidecar = report_path(layout, exchange, pair, timeframe)
    write_candles(candles, target, report.model_dump_json(indent=2), sidecar)
    return ImportResult(report, target, sidecar)


def check_candles(
    *,
    pair: str,
    timeframe: str,
    exchange: str,
    layout: UserDir,
    options: QualityOptions | None = None,
) -> QualityReport:
    """The report of already imported candles.

    Gaps, bad ticks, invariants and the data window are recomputed from the stored
    candles; what only the import could see (source file, exports, duplicates,
    repairs, filled candles) comes from the report written at import time.
    """
    check_pair(pair)
    candles = load_candles(layout, exchange, pair, timeframe)
    fresh = assess(candles, timeframe, pair, options)
    sidecar = report_path(layout, exchange, pair, timeframe)
    if not sidecar.exists():
        return fresh
    try:
        stored = QualityReport.model_validate(json.loads(sidecar.read_text(encoding="utf-8")))
    except (ValueError, json.JSONDecodeError) as exc:
        raise DataError(f"unreadable import report ({exc})", path=sidecar) from exc
    if stored.window.sha256 != fresh.window.sha256:
        raise DataError(
            "the stored candles do not match their import report (sha256 differs)",
            path=candles_path(layout, exchange, pair, timeframe),
            hint="the file was changed after import: import it again",
        )
    return stored.model_copy(
        update={
            "gaps": fresh.gaps,
            "bad_ticks": fresh.bad_ticks,
            "invariant_violations": fresh.invariant_violations,
            "window": fresh.window,
        }
    )


def kept_bad_ticks(layout: UserDir, exchange: str, pair: str, timeframe: str) -> list[datetime]:
    """Dates of the bad ticks the import flagged and kept (imported without ``--repair``),
    from its report; none when there is no readable report."""
    sidecar = report_path(layout, exchange, pair, timeframe)
    try:
        stored = QualityReport.model_validate(json.loads(sidecar.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return []
    repaired = {repair.date for repair in stored.repairs}
    return sorted({tick.date for tick in stored.bad_ticks} - repaired)
