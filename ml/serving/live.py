"""The live path's per-pair state: only new candles are processed, over a bounded tail."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.bundle import ModelBundle
from ml.serving.columns import regime_codes


class LiveState:
    """One pair's live state: the columns computed so far, by candle, and the regime filter."""

    def __init__(
        self, stamps: np.ndarray, columns: dict[str, np.ndarray], regime_filter: Any, window: int
    ) -> None:
        self.stamps = stamps  # candle open times (ns), ascending
        self.columns = columns  # one array per output column, aligned with stamps
        self.regime_filter = regime_filter  # OnlineRegimeFilter carried forward (None: no regimes)
        self.window = window

    @classmethod
    def bootstrap(
        cls, bundle: ModelBundle, candles: pd.DataFrame, stamps: np.ndarray, window: int
    ) -> LiveState:
        """Process a whole frame; replay the regime filter so it can continue exactly."""
        features = bundle.features(candles)
        regimes = bundle.regimes(features)
        columns: dict[str, np.ndarray] = {c: regimes[c].to_numpy() for c in regimes.columns}
        if "regime" in columns:
            columns["regime"] = regime_codes(bundle.metadata.regime_labels, columns["regime"])
        columns.update(bundle.forecast(bundle.inputs(features, regimes)))
        regime_filter = None
        if bundle.regime_model is not None:
            regime_filter = bundle.regime_model.online()
            x = features[list(bundle.config.regime.columns)].to_numpy(dtype="float64")
            for row in x:
                regime_filter.update(row)
        return cls(stamps.copy(), columns, regime_filter, window)

    def continued_by(self, stamps: np.ndarray) -> bool:
        """Does the new frame extend this state (same candles where they overlap)?"""
        if not len(stamps) or not len(self.stamps) or stamps[0] < self.stamps[0]:
            return False
        start = int(np.searchsorted(self.stamps, stamps[0]))
        overlap = self.stamps[start:]
        return bool(
            len(overlap)
            and len(overlap) <= len(stamps)
            and np.array_equal(stamps[: len(overlap)], overlap)
        )

    def advance(self, bundle: ModelBundle, candles: pd.DataFrame, stamps: np.ndarray) -> None:
        new = int((stamps > self.stamps[-1]).sum())
        if new == 0:
            return
        if len(candles) > self.window:
            candles = candles.iloc[len(candles) - self.window :].reset_index(drop=True)
        context = bundle.forecaster.context_rows
        # the rows the new candles and the forecaster's context need, from the bounded tail
        features = bundle.tail_features(candles, new + context)
        regime_columns = [c for c in self.columns if c.startswith("p_") and c != "p_up"]
        fresh: dict[str, np.ndarray] = {}
        if self.regime_filter is not None and bundle.regime_model is not None:
            labels = bundle.regime_model.labels_
            x = np.column_stack([features[c][-new:] for c in bundle.config.regime.columns])
            rows, decisions = [], []
            for row in x:  # O(K^2) per new candle; the decision after each one
                rows.append(self.regime_filter.update(row))
                decisions.append(self.regime_filter.decision)
            probabilities = np.array(rows)
            for k, label in enumerate(labels):
                fresh[f"p_{label}"] = probabilities[:, k]
            fresh["regime"] = np.asarray(decisions, dtype="int16")  # codes, -1: none yet
        # The forecaster reads the new rows and the sequence context before them: inputs for
        # just those rows, with cached regime probabilities for the older ones.
        needed = min(len(candles), new + context)  # the rows tail_features computed
        tail_regimes = {
            column: np.concatenate(
                [self.columns[column][len(self.columns[column]) - (needed - new) :], fresh[column]]
            )
            for column in regime_columns
        }
        fresh.update(bundle.forecast(bundle.live_inputs(features, tail_regimes), last=new))
        keep = int(np.searchsorted(self.stamps, stamps[0]))  # candles the frame no longer holds
        self.stamps = np.concatenate([self.stamps[keep:], stamps[-new:]])
        for column in self.columns:
            self.columns[column] = np.concatenate([self.columns[column][keep:], fresh[column]])

    def aligned(self, stamps: np.ndarray) -> dict[str, np.ndarray]:
        start = int(np.searchsorted(self.stamps, stamps[0]))
        return {
            column: values[start : start + len(stamps)] for column, values in self.columns.items()
        }
