"""Rule-based reasoning model: regime + indicators -> a signal with a reason.

Every candle falls into one situation: the regime (argmax of the ``p_<label>``
columns), the RSI zone (oversold / neutral / overbought) and the sign of the
momentum (``momentum_column``). ``fit`` learns nothing but how each situation
turned out in training: the share of up moves (classification) or the mean
forward return (regression), shrunk towards the overall rate by
``prior_strength`` pseudo-candles. The rule then reads: go long in a situation
the rules consider favourable *and* whose training record agrees.

``explain(X)`` returns, for every row, the sentence behind the prediction, e.g.
``"long: regime bull (p=0.81), RSI 55 neutral, momentum +1.20%; situation was
up 56% of 1,204 training candles"``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.models.base import Task, as_frame
from ml.models.forecaster import Forecaster
from ml.models.params import POSITIVE, Range


class RuleReasoner(Forecaster):
    has_reasons: ClassVar[bool] = True
    decides_class: ClassVar[bool] = True  # its long/flat decision, not p_up > 0.5
    param_ranges: ClassVar[dict[str, Range]] = {
        "rsi_oversold": Range(0.0, 100.0),
        "rsi_overbought": Range(0.0, 100.0),
        "prior_strength": POSITIVE,
    }

    def __init__(
        self,
        task: Task = "classification",
        rsi_column: str = "%-rsi_14",
        momentum_column: str = "%-log_return_24",
        rsi_oversold: float = 30.0,
        rsi_overbought: float = 70.0,
        prior_strength: float = 50.0,
    ) -> None:
        self.task = task
        self.rsi_column = rsi_column
        self.momentum_column = momentum_column
        self.rsi_oversold = rsi_oversold
        self.rsi_overbought = rsi_overbought
        self.prior_strength = prior_strength

    # -- situations ------------------------------------------------------------------

    def _situations(self, frame: pd.DataFrame) -> tuple[list[str], dict[str, NDArray[np.float64]]]:
        missing = [c for c in (self.rsi_column, self.momentum_column) if c not in frame.columns]
        if missing:
            raise ValueError(f"the reasoning model needs feature column(s) {missing}")
        regime_columns = [c for c in frame.columns if str(c).startswith("p_")]
        rsi = frame[self.rsi_column].to_numpy(dtype="float64")
        momentum = frame[self.momentum_column].to_numpy(dtype="float64")
        if regime_columns:
            probabilities = frame[regime_columns].to_numpy(dtype="float64")
            finite = np.isfinite(probabilities).all(axis=1)
            best = np.where(
                finite, np.nanargmax(np.where(finite[:, None], probabilities, 0.0), axis=1), -1
            )
            regime = np.array(
                [str(regime_columns[b])[2:] if b >= 0 else "" for b in best], dtype=object
            )
            regime_p = np.where(finite, probabilities.max(axis=1, initial=0.0), np.nan)
        else:
            regime = np.full(len(frame), "any", dtype=object)
            regime_p = np.full(len(frame), np.nan)
        zone = np.where(
            rsi < self.rsi_oversold,
            "oversold",
            np.where(rsi > self.rsi_overbought, "overbought", "neutral"),
        )
        direction = np.where(momentum > 0, "up", "down")
        valid = np.isfinite(rsi) & np.isfinite(momentum) & (regime != "")
        keys = [
            f"{r}|{z}|{d}" if ok else ""
            for r, z, d, ok in zip(regime, zone, direction, valid, strict=True)
        ]
        details = {"rsi": rsi, "momentum": momentum, "regime_p": regime_p}
        return keys, details

    @staticmethod
    def _favourable(key: str) -> bool:
        regime, zone, direction = key.split("|")
        if zone == "overbought" or regime == "bear" or regime == "crash":
            return zone == "oversold"
        return direction == "up" or zone == "oversold"

    # -- estimator API ---------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y: NDArray[np.float64]) -> RuleReasoner:
        frame = as_frame(X)
        self.feature_names_in_ = [str(c) for c in frame.columns]
        keys, _ = self._situations(frame)
        target = np.asarray(y, dtype="float64")
        table = pd.DataFrame({"key": keys, "y": target})
        table = table[(table["key"] != "") & np.isfinite(table["y"])]
        if table.empty:
            raise ValueError("no training rows with complete indicators and a target")
        self.base_rate_ = float(table["y"].mean())
        stats = table.groupby("key")["y"].agg(["sum", "count"])
        k = self.prior_strength
        shrunk = (stats["sum"] + k * self.base_rate_) / (stats["count"] + k)
        self.situation_rate_: dict[str, float] = {str(i): float(v) for i, v in shrunk.items()}
        self.situation_count_: dict[str, int] = {str(i): int(v) for i, v in stats["count"].items()}
        self.history_: list[dict[str, float]] = []
        self.n_features_in_ = frame.shape[1]
        self.device_ = "cpu"
        return self

    def _rates(self, keys: list[str]) -> NDArray[np.float64]:
        return np.array(
            [self.situation_rate_.get(key, self.base_rate_) if key else np.nan for key in keys],
            dtype="float64",
        )

    def _signal(self, keys: list[str], rates: NDArray[np.float64]) -> NDArray[np.float64]:
        threshold = 0.5 if self.task == "classification" else 0.0
        favourable = np.array([bool(key) and self._favourable(key) for key in keys])
        return np.where(
            np.isfinite(rates), (favourable & (rates > threshold)).astype("float64"), np.nan
        )

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """P(up) per row: the training record of the row's situation, (n, 2)."""
        if self.task != "classification":
            raise AttributeError("predict_proba is only defined for classification")
        keys, _ = self._situations(as_frame(X))
        p_up = self._rates(keys)
        return np.column_stack([1.0 - p_up, p_up])

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """1 = long, 0 = flat (classification); expected return when long (regression)."""
        keys, _ = self._situations(as_frame(X))
        rates = self._rates(keys)
        signal = self._signal(keys, rates)
        return (
            signal
            if self.task == "classification"
            else np.where(signal > 0, rates, np.minimum(rates, 0.0))
        )

    def explain(self, X: pd.DataFrame) -> list[str]:
        """One human-readable reason per row."""
        keys, details = self._situations(as_frame(X))
        rates = self._rates(keys)
        signal = self._signal(keys, rates)
        reasons = []
        for i, key in enumerate(keys):
            if not key:
                reasons.append("no signal: indicators or regime not available yet (warm-up)")
                continue
            regime, zone, _ = key.split("|")
            p = details["regime_p"][i]
            regime_text = f"regime {regime}" + (f" (p={p:.2f})" if np.isfinite(p) else "")
            record = (
                f"up {rates[i]:.0%}"
                if self.task == "classification"
                else f"mean return {rates[i]:+.3%}"
            )
            count = self.situation_count_.get(key, 0)
            verdict = "long" if signal[i] > 0 else "flat"
            reasons.append(
                f"{verdict}: {regime_text}, RSI {details['rsi'][i]:.0f} {zone}, momentum "
                f"{details['momentum'][i]:+.2%}; situation was {record} of {count:,} training candles"
            )
        return reasons
