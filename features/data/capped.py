"""Input bytes read within a bound: what a candle file may cost before it is refused.

A candle export read as text is at most :data:`MAX_CANDLE_BYTES` once decompressed; a
larger file is refused from its size before it is read, and a gzip as it inflates
(chunk by chunk, so a gzip bomb is refused at the chunk that crosses the cap, or at
its first megabyte when that is binary). A gzip bomb or a gigabyte of garbage once
took gigabytes of memory.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from common.errors import DataError

# A candle export read as text is at most this size once decompressed: eight years of
# 5-minute candles in a CryptoDataDownload CSV (about 120 MB). Larger input, or a gzip
# that inflates past it, is refused before it is held in memory (a gzip bomb or a
# gigabyte of garbage once took gigabytes). Larger histories come as Freqtrade feather
# files, which are binary and compact and are read by pyarrow, without this cap.
MAX_CANDLE_BYTES = 160 * 1024 * 1024
_CHUNK = 1 << 20


def _too_large(path: Path, what: str) -> DataError:
    return DataError(
        f"{what} more than {MAX_CANDLE_BYTES // (1 << 20)} MiB: not a candle export "
        "this importer reads in one piece",
        path=path,
        hint="check that the file holds candles; a longer history imports as a Freqtrade "
        "feather file (freqtrade convert-data --format-to feather)",
    )


def read_capped(path: Path) -> bytes:
    """The file's bytes; refused from its size alone when over the cap (a feather file,
    binary and compact, may be as large: it is read by pyarrow, not as text)."""
    size = path.stat().st_size
    if size > MAX_CANDLE_BYTES:
        with path.open("rb") as handle:
            if handle.read(6) == b"ARROW1":
                return b"ARROW1"  # read_raw hands the path to the feather reader
        raise _too_large(path, f"{size / (1 << 20):,.0f} MiB:")
    return path.read_bytes()


def gunzip_capped(raw: bytes, path: Path) -> bytes:
    """Decompress a gzip file in chunks, refusing it as soon as it inflates past the cap
    or shows binary content (a gzip bomb of zeros is refused at its first megabyte)."""
    inflater = zlib.decompressobj(wbits=31)  # gzip framing
    parts: list[bytes] = []
    total = 0
    pending = raw
    try:
        while pending or not inflater.eof:
            part = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            if not part and not pending:
                break
            if total == 0 and part and part[:6] != b"ARROW1":
                refuse_binary(part, path)
            total += len(part)
            if total > MAX_CANDLE_BYTES:
                raise _too_large(path, "decompresses to")
            parts.append(part)
            if inflater.eof and inflater.unused_data[:2] == b"\x1f\x8b":  # multi-member
                pending, inflater = inflater.unused_data, zlib.decompressobj(wbits=31)
    except zlib.error as exc:
        raise DataError(f"corrupt gzip file ({exc})", path=path) from exc
    if not inflater.eof:
        raise DataError(
            "truncated gzip file (the compressed stream ends early)",
            path=path,
            hint="the download or copy was cut short: fetch the file again",
        )
    return b"".join(parts)


def refuse_binary(head: bytes, path: Path) -> None:
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"binary content (NUL byte at offset {nul}); expected a CSV or JSON text file, "
            "or a Freqtrade feather file",
            path=path,
        )
