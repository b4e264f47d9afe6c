"""Market data: reading raw exports, checking their quality, storing candles.

Public entry points: :func:`import_candles`, :func:`check_candles`,
:func:`load_candles`, :func:`candles_path`.
"""

from features.data.importer import ImportOptions, check_candles, import_candles
from features.data.quality import DuplicatePolicy, QualityReport
from features.data.store import candles_path, load_candles, reference_candles, report_path

__all__ = [
    "DuplicatePolicy",
    "ImportOptions",
    "QualityReport",
    "candles_path",
    "check_candles",
    "import_candles",
    "load_candles",
    "reference_candles",
    "report_path",
]
