"""Candles and features from the user dir: the one loader of a spec's data and features
(training, tuning, retraining and regimes read through it), and `tradingbot features
build` (candles -> cached feature frame -> parquet)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.layout import UserDir
from experiments.spec import DataConfig
from features.candles import data_window
from features.data import load_candles, reference_candles
from features.data.importer import check_pair
from features.feature_spec import FeatureSpec, default_spec, load_spec
from features.frames import FeatureCache, FeatureFrameMeta, write_feature_file
from features.timerange import TimeRange, select_candles


@dataclass(frozen=True)
class FeatureBuild:
    frame: pd.DataFrame
    meta: FeatureFrameMeta
    cache_hit: bool


def feature_cache(layout: UserDir) -> FeatureCache:
    return FeatureCache(layout.feature_cache)


def spec_candles(data: DataConfig, layout: UserDir) -> pd.DataFrame:
    """A single-pair spec's candles: its pair and timeframe, inside its timerange."""
    candles = load_candles(layout, data.exchange, data.pair, data.timeframe)
    return select_candles(candles, TimeRange.parse(data.timerange))


def cached_features(
    candles: pd.DataFrame,
    spec: FeatureSpec,
    layout: UserDir,
    pair: str,
    timeframe: str,
    exchange: str = "binance",
) -> pd.DataFrame:
    """The feature frame of ``candles`` (one pair and timeframe), from the user dir's cache
    when it holds it; a spec's reference pairs are read from the user dir too."""
    references = reference_candles(spec, layout, exchange, timeframe)
    window = data_window(candles, pair, timeframe)
    frame, _, _ = feature_cache(layout).build(candles, spec, window, references)
    return frame


def build_features(
    *, pair: str, timeframe: str, exchange: str, layout: UserDir, spec: FeatureSpec
) -> FeatureBuild:
    check_pair(pair)
    spec.check_timeframe(timeframe)
    candles = load_candles(layout, exchange, pair, timeframe)
    window = data_window(candles, pair, timeframe)
    references = reference_candles(spec, layout, exchange, timeframe)
    frame, meta, hit = feature_cache(layout).build(candles, spec, window, references)
    return FeatureBuild(frame, meta, hit)


def build_feature_file(
    *, pair: str, timeframe: str, exchange: str, layout: UserDir, spec_path: Path | None, out: Path
) -> FeatureBuild:
    spec = default_spec() if spec_path is None else load_spec(spec_path)
    result = build_features(
        pair=pair, timeframe=timeframe, exchange=exchange, layout=layout, spec=spec
    )
    write_feature_file(result.frame, result.meta, out)
    return result
