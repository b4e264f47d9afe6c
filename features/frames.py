"""Feature frames on disk: parquet with their lineage, and a cache keyed by inputs.

A feature file carries its :class:`FeatureFrameMeta` (spec, spec hash, the
:class:`DataWindow` of the candles, warm-up) in the parquet schema metadata
under ``tradingbot.features`` and in a ``<file>.meta.json`` sidecar.

The cache stores each built frame under ``<cache>/<spec hash>/<data sha256>.parquet``:
same candles and same spec means the same frame, so a repeated build is a read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from common.atomic import atomic_path, write_text_atomic
from common.errors import DataError
from features.candles import DataWindow, candles_sha256
from features.feature_spec import PIPELINE_VERSION, FeatureSpec
from features.pipeline import build, feature_columns, first_valid_row

METADATA_KEY = b"tradingbot.features"


class FeatureFrameMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec_hash: str
    pipeline_version: int
    spec: FeatureSpec
    window: DataWindow
    columns: list[str]
    warmup_rows: int  # rows before the first complete row (NaN in some feature)
    first_valid: datetime | None  # date of the first row with every feature finite


def describe(frame: pd.DataFrame, spec: FeatureSpec, window: DataWindow) -> FeatureFrameMeta:
    first = first_valid_row(frame)
    return FeatureFrameMeta(
        spec_hash=spec.hash,
        pipeline_version=PIPELINE_VERSION,
        spec=spec,
        window=window,
        columns=feature_columns(frame),
        warmup_rows=len(frame) if first is None else first,
        first_valid=None if first is None else frame["date"].iloc[first].to_pydatetime(),
    )


def write_feature_file(frame: pd.DataFrame, meta: FeatureFrameMeta, path: Path) -> Path:
    """Write ``frame`` as parquet with ``meta`` embedded, plus the sidecar JSON."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), METADATA_KEY: meta.model_dump_json().encode()}
    table = table.replace_schema_metadata(metadata)
    sidecar = path.with_name(path.name + ".meta.json")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    write_text_atomic(sidecar, meta.model_dump_json(indent=2))
    return sidecar


def read_feature_file(path: Path) -> tuple[pd.DataFrame, FeatureFrameMeta]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"unreadable feature file ({exc})", path=path) from exc
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise DataError("not a tradingbot feature file (no feature metadata)", path=path)
    return table.to_pandas(), FeatureFrameMeta.model_validate(json.loads(raw))


class FeatureCache:
    """Built feature frames keyed by (spec hash, data sha256)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(
        self,
        spec: FeatureSpec,
        window: DataWindow,
        references: Mapping[str, pd.DataFrame] | None = None,
    ) -> Path:
        """Keyed by the spec and the candles (and the reference pairs' candles, if any)."""
        key = window.sha256
        if references:
            digest = hashlib.sha256(key.encode())
            for pair in sorted(references):
                digest.update(pair.encode() + candles_sha256(references[pair]).encode())
            key = digest.hexdigest()
        return self.root / spec.hash / f"{key}.parquet"

    def build(
        self,
        candles: pd.DataFrame,
        spec: FeatureSpec,
        window: DataWindow,
        references: Mapping[str, pd.DataFrame] | None = None,
    ) -> tuple[pd.DataFrame, FeatureFrameMeta, bool]:
        """Return (frame, meta, cache_hit); builds and stores the frame on a miss."""
        path = self.path(spec, window, references)
        if path.exists():
            try:
                frame, meta = read_feature_file(path)
            except DataError:
                path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, not trusted
            else:
                if meta.window == window and meta.spec_hash == spec.hash:
                    return frame, meta, True
        frame = build(candles, spec, window.timeframe, references)
        meta = describe(frame, spec, window)
        write_feature_file(frame, meta, path)
        return frame, meta, False
