"""`tradingbot features build`: candles from the user dir -> cached feature frame -> parquet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.layout import UserDir
from features.candles import data_window
from features.data import load_candles
from features.data.importer import check_pair
from features.frames import FeatureCache, FeatureFrameMeta, write_feature_file
from features.spec import FeatureSpec, default_spec, load_spec


@dataclass(frozen=True)
class FeatureBuild:
    frame: pd.DataFrame
    meta: FeatureFrameMeta
    cache_hit: bool


def feature_cache(userdir: Path) -> FeatureCache:
    return FeatureCache(UserDir(userdir).feature_cache)


def build_features(
    *, pair: str, timeframe: str, exchange: str, userdir: Path, spec: FeatureSpec
) -> FeatureBuild:
    check_pair(pair)
    spec.check_timeframe(timeframe)
    candles = load_candles(userdir, exchange, pair, timeframe)
    window = data_window(candles, pair, timeframe)
    frame, meta, hit = feature_cache(userdir).build(candles, spec, window)
    return FeatureBuild(frame, meta, hit)


def build_feature_file(
    *, pair: str, timeframe: str, exchange: str, userdir: Path, spec_path: Path | None, out: Path
) -> FeatureBuild:
    spec = default_spec() if spec_path is None else load_spec(spec_path)
    result = build_features(
        pair=pair, timeframe=timeframe, exchange=exchange, userdir=userdir, spec=spec
    )
    write_feature_file(result.frame, result.meta, out)
    return result
