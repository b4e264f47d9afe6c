"""One model over several pairs ("pooled"): more rows for the forecaster, one model to run.

How a pooled bundle is fitted on the training rows of every pair:

1. Features are computed per pair (the same spec) and standardised per pair with the
   mean and standard deviation of that pair's training rows (:class:`PairScaler`,
   kept in the bundle): a pair trading at 0.07 BTC and one at 40,000 USDT give
   comparable inputs, and nothing after a fold's training rows enters its scaling.
2. One regime model is fitted on the pairs' standardised regime columns, one pair's
   training rows after the other. The joins between pairs count as transitions for
   EM; with thousands of candles per pair and one join per pair their weight is
   negligible. Regimes are then filtered on each pair's own series, forward only.
3. The forecaster is fitted on every pair's rows, interleaved by time (sorted by
   candle, then pair), with each pair's own target. Sequence models (the LSTMs)
   read consecutive rows, which would mix pairs: they cannot be pooled.

Serving: ``bundle.for_pair(pair)`` is the bundle with that pair's scaler applied to its
features, so prediction, the live path and the adapter work unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.candles import DataWindow, candles_sha256
from features.feature_spec import FeatureSpec
from features.pipeline import feature_columns
from ml.bundle import (
    BundleError,
    Continuation,
    ModelBundle,
    assembled,
    continuation,
    fit_forecaster,
    fit_regimes,
    regime_frame,
)
from ml.config import TrainingConfig
from ml.models.regime_base import RegimeModel
from ml.targets import make_target


@dataclass(frozen=True)
class PairScaler:
    """Per-column mean and standard deviation of one pair's training features."""

    columns: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: pd.DataFrame) -> PairScaler:
        """From the rows where every feature is finite (warm-up rows are left out)."""
        columns = tuple(feature_columns(features))
        values = features[list(columns)].to_numpy(dtype="float64")
        complete = values[np.isfinite(values).all(axis=1)]
        if len(complete) < 2:
            raise BundleError("a pooled pair has fewer than 2 complete training rows")
        std = complete.std(axis=0)
        std[std == 0] = 1.0
        return cls(columns, complete.mean(axis=0), std)

    def frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """``features`` with its feature columns standardised (``date`` kept)."""
        values = (features[list(self.columns)].to_numpy(dtype="float64") - self.mean) / self.std
        out = pd.DataFrame(values, columns=list(self.columns), index=features.index)
        out.insert(0, "date", features["date"].to_numpy())
        return out

    def columns_of(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The live path's feature columns (arrays), standardised."""
        position = {name: i for i, name in enumerate(self.columns)}
        return {
            name: (values - self.mean[position[name]]) / self.std[position[name]]
            for name, values in columns.items()
        }


@dataclass(frozen=True)
class PairData:
    """One pair of a pooled run: its candles and their (unscaled) feature frame."""

    pair: str
    candles: pd.DataFrame
    features: pd.DataFrame


def pooled_window(data: list[PairData], rows: dict[str, slice], timeframe: str) -> DataWindow:
    """The training window of a pooled fit: first and last candle over every pair, rows
    in all, and a digest of each pair's name and candles' sha256."""
    digest = hashlib.sha256()
    firsts, lasts, count = [], [], 0
    for item in data:
        candles = item.candles.iloc[rows[item.pair]]
        firsts.append(candles["date"].iloc[0])
        lasts.append(candles["date"].iloc[-1])
        count += len(candles)
        digest.update(item.pair.encode())
        digest.update(candles_sha256(candles).encode())
    return DataWindow(
        pair=",".join(item.pair for item in data),
        timeframe=timeframe,
        first=min(firsts).to_pydatetime(),
        last=max(lasts).to_pydatetime(),
        rows=count,
        sha256=digest.hexdigest(),
    )


def _interleaved(
    data: list[PairData],
    rows: dict[str, slice],
    scaled: dict[str, pd.DataFrame],
    regime_model: RegimeModel | None,
    config: TrainingConfig,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The forecaster's inputs (scaled features, then each pair's own filtered regime
    probabilities) and targets of every pair's training rows, sorted by candle, then pair."""
    pieces, targets = [], []
    for order, item in enumerate(data):
        regimes = regime_frame(regime_model, scaled[item.pair], config.regime.columns)
        regimes = regimes.drop(columns="regime", errors="ignore")
        piece = pd.concat([scaled[item.pair], regimes], axis=1)
        pieces.append(piece.assign(_pair=order))
        targets.append(make_target(item.candles, config.target).to_numpy()[rows[item.pair]])
    pooled = pd.concat(pieces, ignore_index=True).assign(_target=np.concatenate(targets))
    pooled = pooled.sort_values(["date", "_pair"], kind="stable")
    input_columns = [c for c in pooled.columns if c not in ("date", "_pair", "_target")]
    return pooled[input_columns], pooled["_target"].to_numpy()


def fit_pooled_bundle(
    *,
    name: str,
    data: list[PairData],
    rows: dict[str, slice],
    feature_spec: FeatureSpec,
    config: TrainingConfig,
    seed: int,
    timeframe: str,
    data_sha256: str,
    threads: int | None = None,
    previous: RegimeModel | None = None,
    continue_from: Sequence[Continuation] = (),
) -> ModelBundle:
    """Fit a pooled bundle on ``rows[pair]`` of each pair (see the module doc)."""
    forecaster = config.model.estimator(config.target.task, seed, config.target.horizon, threads)
    if forecaster.context_rows:
        raise BundleError(
            f"{config.model.kind} reads sequences of consecutive rows: it cannot be pooled",
            hint='use pooling = "per_pair" for it, or a model without sequences (lightgbm)',
        )
    scalers = {item.pair: PairScaler.fit(item.features.iloc[rows[item.pair]]) for item in data}
    scaled = {
        item.pair: scalers[item.pair].frame(item.features.iloc[rows[item.pair]]) for item in data
    }
    regime_model = (
        fit_regimes(pd.concat(scaled.values()), config, seed, previous)  # pairs end to end
        if config.model.uses_regimes
        else None
    )
    inputs, target = _interleaved(data, rows, scaled, regime_model, config)
    continued, label, inputs = continuation(continue_from, inputs)
    pipeline, _ = fit_forecaster(forecaster, config, seed, inputs, target, continued)
    return assembled(
        name=name,
        feature_spec=feature_spec,
        config=config,
        regime_model=regime_model,
        forecaster=forecaster,
        inputs=inputs,
        pair=data[0].pair,
        pairs=[item.pair for item in data],
        pair_scalers=scalers,
        timeframe=timeframe,
        train_window=pooled_window(data, rows, timeframe),
        data_sha256=data_sha256,
        seed=seed,
        input_pipeline=pipeline,
        target=target,
        continued_from=label,
    )
