"""A spec's candles and cached features, as the training job every fit of its run shares."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

from common.errors import DataError, SpecError
from common.layout import UserDir
from experiments.spec import ExperimentSpec
from experiments.spec_data import cached_features, spec_candles
from features.data.importer import kept_bad_ticks
from features.data.store import require_pairs
from ml.fold_training import TrainingJob
from ml.pooled import PairData

# candles a market needs at the least: enough for the features' warm-up and a few folds
MIN_CANDLES = 500


def training_job(
    spec: ExperimentSpec, layout: UserDir, threads: int | None, say: Callable[[str], None]
) -> TrainingJob:
    """The job of a single-pair spec, or of a pooled whitelist (every pair, one model).
    Every market's candles are checked before anything is recorded."""
    data = spec.data
    pairs = list(data.whitelist) if spec.is_whitelist else [data.pair]
    if spec.is_whitelist:
        if data.pooling != "pooled":
            raise SpecError(
                f"spec {spec.name} has a whitelist: train it with train_whitelist, or one pair"
            )
        _require_poolable(spec)
        require_pairs(layout, data.exchange, pairs, data.timeframe)
    feature_spec = spec.feature_spec
    feature_spec.check_timeframe(data.timeframe)
    say("building features")
    markets = []
    for pair in pairs:
        one = spec.for_pair(pair).data if spec.is_whitelist else data
        candles = spec_candles(one, layout)
        if len(candles) < MIN_CANDLES:
            raise DataError(
                f"only {len(candles)} {pair} {one.timeframe} candles in timerange "
                f"{one.timerange or '(all)'}",
                hint=f"import more data or widen --timerange (at least {MIN_CANDLES} candles)",
            )
        features = cached_features(candles, feature_spec, layout, pair, one.timeframe, one.exchange)
        markets.append(PairData(pair, candles, features))
    return TrainingJob(
        name=spec.name,
        markets=tuple(markets),
        feature_spec=feature_spec,
        config=spec.training,
        timeframe=data.timeframe,
        seed=spec.seed,
        threads=threads,
    )


def _require_poolable(spec: ExperimentSpec) -> None:
    model = spec.training.model
    if model.estimator(spec.training.target.task, spec.seed, 1).context_rows:
        raise SpecError(
            f"{model.kind} reads sequences of consecutive rows: it cannot be pooled",
            hint='use pooling = "per_pair" for it, or a model without sequences (lightgbm)',
        )


def data_warnings(
    layout: UserDir, exchange: str, timeframe: str, markets: Iterable[PairData]
) -> list[str]:
    """What the import flagged and kept in the training candles: the training learns
    from it, so it says so (printed, and the run's tag ``data.warnings``)."""
    warnings = []
    for market in markets:
        ticks = kept_bad_ticks(layout, exchange, market.pair, timeframe)
        first, last = market.candles["date"].iloc[0], market.candles["date"].iloc[-1]
        inside = [tick for tick in ticks if first <= pd.Timestamp(tick) <= last]
        if inside:
            warnings.append(
                f"{len(inside)} bad tick(s) flagged at import are kept in the {market.pair} "
                f"{timeframe} candles (first {inside[0]:%Y-%m-%d %H:%M} UTC): import "
                "again with --repair to fix them"
            )
    return warnings
