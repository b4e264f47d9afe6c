"""The live path's per-pair state: only new candles are processed, over a bounded tail."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.bundle import ModelBundle, References
from ml.serving.columns import regime_codes


class _Growing:
    """A 1-d array that grows at its end and loses values at its start, in time amortised
    over the values added: a live step's columns must not be copied whole at every candle
    (with 30,000 candles of history that copy alone cost a tenth of a millisecond)."""

    def __init__(self, values: np.ndarray) -> None:
        self._data = np.empty(max(16, 2 * len(values)), dtype=values.dtype)
        self._data[: len(values)] = values
        self._start, self._end = 0, len(values)

    @property
    def values(self) -> np.ndarray:
        """The values held, oldest first (a view: valid until the next :meth:`shift`)."""
        return self._data[self._start : self._end]

    def shift(self, dropped: int, added: np.ndarray) -> None:
        """Drop the ``dropped`` oldest values and append ``added``."""
        self._start = min(self._start + dropped, self._end)
        if self._end + len(added) > len(self._data):  # full: move what is held into a new array
            held = self.values
            data = np.empty(max(16, 2 * (len(held) + len(added))), dtype=self._data.dtype)
            data[: len(held)] = held
            self._data, self._start, self._end = data, 0, len(held)
        self._data[self._end : self._end + len(added)] = added
        self._end += len(added)


class LiveState:
    """One pair's live state: the columns computed so far, by candle, and the regime filter."""

    def __init__(
        self, stamps: np.ndarray, columns: dict[str, np.ndarray], regime_filter: Any, window: int
    ) -> None:
        self._stamps = _Growing(stamps)  # candle open times (ns), ascending
        self._columns = {name: _Growing(values) for name, values in columns.items()}
        self.regime_filter = regime_filter  # OnlineRegimeFilter carried forward (None: no regimes)
        self.window = window

    @property
    def stamps(self) -> np.ndarray:
        return self._stamps.values

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """One array per output column, aligned with :attr:`stamps`."""
        return {name: column.values for name, column in self._columns.items()}

    @classmethod
    def bootstrap(
        cls,
        bundle: ModelBundle,
        candles: pd.DataFrame,
        stamps: np.ndarray,
        window: int,
        references: References = None,
    ) -> LiveState:
        """Process a whole frame; replay the regime filter so it can continue exactly."""
        features = bundle.features(candles, references)
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

    def advance(
        self,
        bundle: ModelBundle,
        candles: pd.DataFrame,
        stamps: np.ndarray,
        references: References = None,
    ) -> None:
        new = int((stamps > self.stamps[-1]).sum())
        if new == 0:
            return
        if len(candles) > self.window:
            candles = candles.iloc[len(candles) - self.window :].reset_index(drop=True)
        context = bundle.context_rows
        # the rows the new candles and the forecaster's context need, from the bounded tail
        features = bundle.tail_features(candles, new + context, references)
        regime_columns = [c for c in self._columns if c.startswith("p_") and c != "p_up"]
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
        held = self.columns
        tail_regimes = {
            column: np.concatenate(
                [held[column][len(held[column]) - (needed - new) :], fresh[column]]
            )
            for column in regime_columns
        }
        fresh.update(bundle.forecast(bundle.live_inputs(features, tail_regimes), last=new))
        dropped = int(np.searchsorted(self.stamps, stamps[0]))  # candles the frame no longer has
        self._stamps.shift(dropped, stamps[-new:])
        for name, column in self._columns.items():
            column.shift(dropped, fresh[name])

    def aligned(self, stamps: np.ndarray) -> dict[str, np.ndarray]:
        start = int(np.searchsorted(self.stamps, stamps[0]))
        return {
            column: values[start : start + len(stamps)] for column, values in self.columns.items()
        }
