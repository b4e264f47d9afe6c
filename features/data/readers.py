"""Read raw candle exports into one long frame, keeping where each row came from.

Supported inputs (detected from the content, not the file name):

* CryptoDataDownload CSV (``unix,date,symbol,open,high,low,close,Volume <base>,...``),
  plain or gzip, optionally with its one-line URL preamble;
* generic OHLCV CSV: a ``date``/``datetime`` column or a Unix ``timestamp``/``unix``/
  ``time`` column, plus ``open, high, low, close, volume``; rows in any order;
* Freqtrade feather (``date, open, high, low, close, volume``);
* Freqtrade JSON (a list of ``[unix_ms, open, high, low, close, volume]``), plain or gzip.

Unix times may be seconds, milliseconds or microseconds, even mixed within one
file (the unit is decided per value by its magnitude). Dates without a zone are
UTC. The result is *not* yet sorted, de-duplicated or validated for gaps: that
is :mod:`features.data.quality`'s job.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from common.errors import DataError
from features.data.capped import gunzip_capped, read_capped, refuse_binary

# Each accepted date format, in the order tried; naive dates are UTC.
DATE_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %I-%p",  # CryptoDataDownload's older exports: "2017-08-17 05-AM"
    "%Y-%m-%d",
    "ISO8601",
)
_EPOCH_NAMES = ("unix", "ts", "open_time", "opentime")
_AMBIGUOUS_TIME_NAMES = ("timestamp", "time")
_DATE_NAMES = ("date", "datetime")
_PRICE_COLUMNS = ("open", "high", "low", "close")
_NAN_LITERALS = {"", "nan", "NaN", "NAN", "null", "NULL", "None", "NA", "N/A"}


class TimeMismatch(BaseModel):
    """Rows whose date text disagrees with their epoch time (the epoch is used)."""

    model_config = ConfigDict(extra="forbid")

    rows: int
    first_line: int
    epoch: str
    text: str
    message: str


@dataclass(frozen=True)
class RawCandles:
    """Rows as read, in file order.

    ``frame`` columns: ``date`` (datetime64[ns, UTC]), ``open, high, low, close,
    volume`` (float64), ``source_row`` (int: 1-based line for text files, 0-based
    row for binary ones), ``export`` (str: which timestamp convention the row
    used, e.g. ``"unix-s + %Y-%m-%d %I-%p"``; several values mean concatenated
    exports), ``precision`` (int: most decimals written in the row's prices, -1
    if unknown).
    """

    frame: pd.DataFrame
    path: Path
    format: str
    location: str  # "line" for text files, "row" for binary frames
    time_mismatch: TimeMismatch | None = None

    def where(self, source_row: int) -> dict[str, int]:
        return {self.location: int(source_row)}


def read_raw(path: Path, *, pair: str) -> RawCandles:
    """Read any supported export of ``pair`` candles at ``path``."""
    if not path.exists():
        raise DataError("file not found", path=path)
    if path.is_dir():
        raise DataError("is a directory, expected a candle file", path=path)
    raw = read_capped(path)
    if not raw:
        raise DataError("file is empty", path=path, hint="export the candles again")
    compressed = raw[:2] == b"\x1f\x8b"
    if compressed:
        raw = gunzip_capped(raw, path)
        if not raw:
            raise DataError("file is empty after decompression", path=path)
    if raw[:6] == b"ARROW1":
        if compressed:
            raise DataError("gzip-compressed feather is not supported", path=path)
        return _read_feather(path)
    text = _decode_text(raw, path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _read_freqtrade_json(stripped, path)
    return _read_csv(text, path, pair=pair)


def _decode_text(raw: bytes, path: Path) -> str:
    refuse_binary(raw, path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"binary or non-UTF-8 content at byte offset {exc.start}; expected a CSV or JSON "
            "text file, or a Freqtrade feather file",
            path=path,
        ) from exc


def _read_csv(text: str, path: Path, *, pair: str) -> RawCandles:
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError("file is empty", path=path)
    # CryptoDataDownload prefixes its exports with a URL line; skip any preamble
    # line that has no comma before the header.
    header_index = next(i for i, line in enumerate(lines) if line.strip())
    while header_index < len(lines) and "," not in lines[header_index]:
        header_index += 1
    if header_index >= len(lines):
        raise DataError("no comma-separated header line found", path=path)
    data_lines = [i for i in range(header_index + 1, len(lines)) if lines[i].strip()]
    if not data_lines:
        raise DataError("header only: no data rows", path=path, line=header_index + 1)
    try:
        table = pd.read_csv(
            io.StringIO("\n".join(lines[header_index:])),
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            skipinitialspace=True,
        )
    except pd.errors.ParserError as exc:
        raise DataError(f"malformed CSV ({exc})", path=path) from exc
    # pandas keeps blank lines as all-empty rows: line numbers stay exact.
    table.index = pd.RangeIndex(header_index + 2, header_index + 2 + len(table))
    table = table[(table != "").any(axis=1)]
    columns = {str(c).strip().lower(): str(c) for c in table.columns}

    def column(name: str) -> pd.Series:
        return table[columns[name]].astype(str).str.strip()

    fmt = "cryptodatadownload-csv" if {"unix", "symbol"} <= columns.keys() else "ohlcv-csv"
    dates, export, mismatch = _parse_times(table, columns, path)
    missing = [c for c in _PRICE_COLUMNS if c not in columns]
    volume_name = _volume_column(columns, pair, path)
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; found {', '.join(map(repr, table.columns))}",
            path=path,
            line=header_index + 1,
            hint="a candle CSV needs a date or unix column and open, high, low, close, volume",
        )
    frame = pd.DataFrame({"date": dates})
    precision = np.full(len(table), 0, dtype="int64")
    for name in (*_PRICE_COLUMNS, "volume"):
        source = column(volume_name if name == "volume" else name)
        frame[name] = _parse_numbers(
            source, path=path, column=columns[volume_name if name == "volume" else name]
        )
        if name in _PRICE_COLUMNS:
            decimals = source.str.partition(".")[2].str.len().to_numpy(dtype="int64")
            precision = np.maximum(precision, decimals)
    frame["source_row"] = table.index.to_numpy(dtype="int64")
    frame["export"] = export
    frame["precision"] = precision
    return RawCandles(frame.reset_index(drop=True), path, fmt, "line", mismatch)


def _volume_column(columns: dict[str, str], pair: str, path: Path) -> str:
    base = pair.split("/")[0].lower()
    for name in ("volume", f"volume {base}", f"volume_{base}", "volume_base"):
        if name in columns:
            return name
    volume_like = [columns[c] for c in columns if c.startswith("volume")]
    found = f"; found {', '.join(map(repr, volume_like))}" if volume_like else ""
    raise DataError(
        f"missing base-currency volume column ('volume' or 'Volume {base.upper()}'){found}",
        path=path,
        hint=f"Freqtrade volumes are in the base currency; is --pair {pair} right?",
    )


def _parse_numbers(values: pd.Series, *, path: Path, column: str) -> pd.Series:
    numbers = pd.to_numeric(values.where(~values.isin(_NAN_LITERALS)), errors="coerce")
    bad = numbers.isna() & ~values.isin(_NAN_LITERALS)
    if bad.any():
        line = int(values.index[bad.to_numpy()][0])
        raise DataError(
            f"non-numeric value {values.loc[line]!r}", path=path, line=line, column=column
        )
    return numbers.astype("float64")


def _parse_times(
    table: pd.DataFrame, columns: dict[str, str], path: Path
) -> tuple[pd.Series, pd.Series, TimeMismatch | None]:
    """Return (UTC dates, export label) from the epoch and/or date columns."""
    epoch_name = next((n for n in _EPOCH_NAMES if n in columns), None)
    date_name = next((n for n in _DATE_NAMES if n in columns), None)
    for name in _AMBIGUOUS_TIME_NAMES:
        if name not in columns:
            continue
        first = table[columns[name]].astype(str).str.strip().iloc[0]
        looks_numeric = first.replace(".", "", 1).isdigit()
        if looks_numeric and epoch_name is None:
            epoch_name = name
        elif not looks_numeric and date_name is None:
            date_name = name
    if epoch_name is None and date_name is None:
        raise DataError(
            f"no time column; found {', '.join(map(repr, table.columns))}",
            path=path,
            hint="name it 'date' (e.g. 2021-06-10 13:00:00, UTC) or 'unix'/'timestamp' (epoch)",
        )
    date_dates = date_label = None
    if date_name is not None:
        date_dates, date_label = _parse_date_strings(
            table[columns[date_name]].astype(str).str.strip(), path, columns[date_name]
        )
    if epoch_name is None:
        assert date_dates is not None and date_label is not None
        return date_dates, date_label, None
    epoch_dates, epoch_label = _parse_epochs(
        table[columns[epoch_name]].astype(str).str.strip(), path, columns[epoch_name]
    )
    if date_dates is None or date_label is None:
        return epoch_dates, epoch_label, None
    # Both present: the epoch wins (CryptoDataDownload's older date strings are
    # hours off in places); disagreements are reported, not hidden.
    assert date_name is not None
    disagree = (epoch_dates != date_dates).to_numpy()
    mismatch = None
    if disagree.any():
        line = int(table.index[disagree][0])
        mismatch = TimeMismatch(
            rows=int(disagree.sum()),
            first_line=line,
            epoch=epoch_dates.loc[line].isoformat(),
            text=date_dates.loc[line].isoformat(),
            message=(
                f"{int(disagree.sum())} rows' {columns[date_name]!r} text disagrees with their "
                f"{columns[epoch_name]!r} time (first at line {line}: "
                f"{epoch_dates.loc[line]} vs {date_dates.loc[line]}); "
                f"the {columns[epoch_name]!r} time was used"
            ),
        )
    return epoch_dates, epoch_label + " + " + date_label, mismatch


def _parse_epochs(values: pd.Series, path: Path, column: str) -> tuple[pd.Series, pd.Series]:
    numbers = _parse_numbers(values, path=path, column=column)
    if numbers.isna().any():
        line = int(numbers.index[numbers.isna().to_numpy()][0])
        raise DataError("missing timestamp", path=path, line=line, column=column)
    if (numbers < 0).any() or not np.isfinite(numbers).all():
        line = int(numbers.index[((numbers < 0) | ~np.isfinite(numbers)).to_numpy()][0])
        raise DataError(
            f"invalid timestamp {values.loc[line]!r}", path=path, line=line, column=column
        )
    units = np.select(
        [numbers < 1e11, numbers < 1e14, numbers < 1e17], ["s", "ms", "us"], default="ns"
    )
    scale = pd.Series(units, index=numbers.index).map({"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0})
    nanos = np.round(numbers.to_numpy() * scale.to_numpy()).astype("int64")
    dates = pd.Series(pd.to_datetime(nanos, unit="ns", utc=True), index=numbers.index)
    return dates, pd.Series("unix-" + units, index=numbers.index)


def _parse_date_strings(values: pd.Series, path: Path, column: str) -> tuple[pd.Series, pd.Series]:
    dates = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    labels = pd.Series("", index=values.index, dtype=object)
    pending = values != ""
    for fmt in DATE_FORMATS:
        if not pending.any():
            break
        parsed = pd.to_datetime(values[pending], format=fmt, errors="coerce", utc=True)
        ok = parsed.notna()
        idx = parsed.index[ok.to_numpy()]
        dates.loc[idx] = parsed[ok].astype("datetime64[ns, UTC]")
        labels.loc[idx] = fmt
        pending.loc[idx] = False
    unresolved = dates.isna().to_numpy()
    if unresolved.any():
        line = int(values.index[unresolved][0])
        raise DataError(
            f"unparseable date {values.loc[line]!r}",
            path=path,
            line=line,
            column=column,
            hint="supported formats: " + ", ".join(DATE_FORMATS) + " (naive dates are UTC)",
        )
    return dates, labels.astype(str)


def _read_feather(path: Path) -> RawCandles:
    try:
        table = pd.read_feather(path)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise DataError(f"unreadable feather file ({exc})", path=path) from exc
    return _from_frame(table, path, "freqtrade-feather")


def _read_freqtrade_json(text: str, path: Path) -> RawCandles:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", path=path
        ) from exc
    if not isinstance(rows, list) or not rows:
        raise DataError("expected a non-empty JSON list of [unix_ms, o, h, l, c, v]", path=path)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) < 6:
            raise DataError("expected [unix_ms, open, high, low, close, volume]", path=path, row=i)
    try:
        table = pd.DataFrame([r[:6] for r in rows], columns=["date", *_PRICE_COLUMNS, "volume"])
        table = table.astype("float64")
    except (TypeError, ValueError) as exc:
        raise DataError(f"non-numeric value in candle list ({exc})", path=path) from exc
    return _from_frame(table, path, "freqtrade-json")


def _from_frame(table: pd.DataFrame, path: Path, fmt: str) -> RawCandles:
    if table.empty:
        raise DataError("no rows", path=path)
    missing = [c for c in ("date", *_PRICE_COLUMNS, "volume") if c not in table.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}", path=path)
    frame = pd.DataFrame(index=pd.RangeIndex(len(table)))
    date = table["date"].reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(date):
        if getattr(date.dt, "tz", None) is None:
            date = date.dt.tz_localize("UTC")
        frame["date"] = date.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        frame["export"] = "datetime"
    else:
        frame["date"], frame["export"] = _parse_epochs(date.astype(str), path, "date")
    for name in (*_PRICE_COLUMNS, "volume"):
        values = table[name].reset_index(drop=True)
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"non-numeric value {values.iloc[row]!r}", path=path, row=row, column=name
            )
        frame[name] = numbers.astype("float64")
    frame["source_row"] = np.arange(len(table), dtype="int64")
    frame["precision"] = -1
    return RawCandles(frame, path, fmt, "row")
