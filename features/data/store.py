"""Candles on disk in Freqtrade's own layout.

``<userdir>/data/<exchange>/<BASE>_<QUOTE>-<timeframe>.feather`` (Freqtrade's
``FeatherDataHandler`` layout: columns ``date, open, high, low, close, volume``,
``date`` as ``datetime64[ms, UTC]``), with the import report beside it as
``<BASE>_<QUOTE>-<timeframe>.report.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from common.atomic import atomic_path
from common.errors import DataError, MissingDataError
from common.layout import UserDir, pair_to_filename
from features.candles import CANDLE_COLUMNS, validate_candles
from features.feature_spec import FeatureSpec


def candles_path(layout: UserDir, exchange: str, pair: str, timeframe: str) -> Path:
    return layout.data(exchange) / f"{pair_to_filename(pair)}-{timeframe}.feather"


def report_path(layout: UserDir, exchange: str, pair: str, timeframe: str) -> Path:
    return layout.data(exchange) / f"{pair_to_filename(pair)}-{timeframe}.report.json"


def write_candles(candles: pd.DataFrame, path: Path, report_json: str, report: Path) -> None:
    """Write candles and their report via temp files, renamed only once both are complete."""
    frame = validate_candles(candles).loc[:, list(CANDLE_COLUMNS)]
    frame["date"] = frame["date"].astype("datetime64[ms, UTC]")
    with atomic_path(path) as tmp_data, atomic_path(report) as tmp_report:
        frame.to_feather(tmp_data, compression="lz4", compression_level=9)
        tmp_report.write_text(report_json, encoding="utf-8")


def require_candles(layout: UserDir, exchange: str, pair: str, timeframe: str) -> Path:
    """The path of imported candles; a clear error says how to import them when missing.
    Cheap: commands call it before their heavy imports, so a typo is reported at once."""
    path = candles_path(layout, exchange, pair, timeframe)
    if not path.exists():
        raise MissingDataError(
            f"no {pair} {timeframe} candles for {exchange} in {path.parent}",
            hint=f"run: tradingbot data import FILE --pair {pair} --timeframe {timeframe} "
            f"--exchange {exchange} --userdir {layout.root}",
        )
    return path


def require_pairs(layout: UserDir, exchange: str, pairs: Sequence[str], timeframe: str) -> None:
    """:func:`require_candles` for every pair, naming every missing one in one error."""
    absent = [p for p in pairs if not candles_path(layout, exchange, p, timeframe).exists()]
    if len(absent) == 1:
        require_candles(layout, exchange, absent[0], timeframe)
    if absent:
        raise MissingDataError(
            f"no {timeframe} candles for {', '.join(absent)} ({exchange}) in {layout.root}",
            hint=f"import each: tradingbot data import FILE --pair PAIR --timeframe {timeframe} "
            f"--exchange {exchange} --userdir {layout.root}",
        )


def load_candles(layout: UserDir, exchange: str, pair: str, timeframe: str) -> pd.DataFrame:
    """Load imported candles; a clear error says how to import them when missing."""
    path = require_candles(layout, exchange, pair, timeframe)
    try:
        frame = pd.read_feather(path)
    except Exception as exc:
        raise DataError(f"unreadable feather file ({exc})", path=path) from exc
    return validate_candles(frame, source=str(path))


def reference_candles(
    spec: FeatureSpec, layout: UserDir, exchange: str, timeframe: str
) -> dict[str, pd.DataFrame]:
    """The imported candles of a feature spec's reference pairs (none: an empty dict)."""
    return {pair: load_candles(layout, exchange, pair, timeframe) for pair in spec.reference_pairs}
