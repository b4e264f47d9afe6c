"""The FreqAI-style adapter: registered models inside Freqtrade strategies.

A strategy calls :meth:`ModelAdapter.populate` from ``populate_indicators``. It
loads the bundle behind a registry URI (default ``models:/NAME@champion``),
computes the features with the bundle's own spec, and adds:

* ``&-prediction`` (class 0/1 or forward return), ``&-p_up`` (classifiers),
* ``&-regime`` and ``&-p_<label>`` (filtered regime probabilities),
* ``&-reason`` (the reasoning model's sentence, when the model has one),
* ``do_predict``: 1 = trust the row, 0 = don't (warm-up, inside or before the
  bundle's training window, model unavailable), with the reason logged.

In backtests the whole dataframe is predicted in one batch, causally (every
feature, regime probability and sequence uses earlier candles only). Candles at
or before the end of the bundle's training window get ``do_predict = 0``: a
backtest overlapping the training window warns loudly and reports how many
candles were excluded. A missing model, an unreachable registry or a feature
mismatch gives ``do_predict = 0`` and one log line per retry interval, never an
exception that would put Freqtrade in a crash loop.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.atomic import write_text_atomic
from ml.bundle import ModelBundle

logger = logging.getLogger(__name__)


@dataclass
class GuardReport:
    """What the adapter withheld, per pair: written for the backtest record."""

    rows: dict[str, int] = field(default_factory=dict)
    trusted: dict[str, int] = field(default_factory=dict)
    in_training_window: dict[str, int] = field(default_factory=dict)
    warmup: dict[str, int] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


class ModelAdapter:
    def __init__(
        self,
        model_uri: str,
        *,
        tracking_uri: str | None = None,
        retry_seconds: float = 300.0,
        report_path: Path | None = None,
        evaluation_start: pd.Timestamp | None = None,
        stitched_predictions: Path | None = None,
    ) -> None:
        self.model_uri = model_uri
        # Walk-forward backtests: out-of-sample predictions of each fold's bundle,
        # stitched in time order (``date``, ``prediction``, ``p_up``, ``regime``, ``p_<label>``).
        self.stitched_predictions = stitched_predictions
        self.evaluation_start = evaluation_start  # first traded candle (backtest timerange start)
        self.tracking_uri = tracking_uri
        self.retry_seconds = retry_seconds
        self.report_path = report_path
        self.bundle: ModelBundle | None = None
        self.model_version: str | None = None
        self._failed_at: float | None = None
        self._failure: str | None = None
        self.guard = GuardReport()

    # -- loading ---------------------------------------------------------------------

    def _load(self) -> ModelBundle | None:
        if self.bundle is not None:
            return self.bundle
        if self._failed_at is not None and time.monotonic() - self._failed_at < self.retry_seconds:
            return None
        # A strategy must not hang for minutes on an unreachable registry: few, short retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        try:
            from ml.registry import load_bundle
            from ml.tracking import use_uri

            if self.tracking_uri:
                use_uri(self.tracking_uri)
            self.bundle = load_bundle(self.model_uri)
        except Exception as exc:  # any failure must degrade to do_predict = 0, not crash
            self._failed_at = time.monotonic()
            self._failure = f"model {self.model_uri} unavailable: {exc}".splitlines()[0]
            logger.error("do_predict=0: %s (retrying in %.0f s)", self._failure, self.retry_seconds)
            return None
        self._failed_at, self._failure = None, None
        logger.info(
            "loaded %s: %s trained on %s .. %s",
            self.model_uri,
            self.bundle.metadata.forecaster_kind,
            self.bundle.metadata.train_window.first,
            self.bundle.metadata.train_window.last,
        )
        return self.bundle

    # -- prediction ------------------------------------------------------------------

    def _empty(self, dataframe: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
        columns: dict[str, Any] = {"&-prediction": np.nan, "&-p_up": np.nan, "&-regime": ""}
        columns.update({f"&-p_{label}": np.nan for label in labels})
        columns["do_predict"] = 0
        return dataframe.assign(**columns)

    def _populate_stitched(self, dataframe: pd.DataFrame, pair: str, path: Path) -> pd.DataFrame:
        """Walk-forward mode: each candle gets the prediction of the fold bundle whose
        out-of-sample window contains it; candles outside every window get do_predict = 0."""
        stitched = pd.read_parquet(path)
        stitched["date"] = pd.to_datetime(stitched["date"], utc=True).astype("datetime64[ns, UTC]")
        dates = pd.to_datetime(dataframe["date"], utc=True).astype("datetime64[ns, UTC]")
        merged = pd.DataFrame({"date": dates.to_numpy()}).merge(stitched, on="date", how="left")
        out = dataframe.copy()
        out["&-prediction"] = merged["prediction"].to_numpy()
        out["&-p_up"] = merged["p_up"].to_numpy() if "p_up" in merged else np.nan
        out["&-regime"] = merged["regime"].fillna("").to_numpy() if "regime" in merged else ""
        for column in [c for c in merged.columns if c.startswith("p_") and c != "p_up"]:
            out[f"&-{column}"] = merged[column].to_numpy()
        ready = np.isfinite(out["&-prediction"].to_numpy(dtype="float64"))
        out["do_predict"] = ready.astype("int64")
        self.guard.rows[pair] = len(out)
        self.guard.trusted[pair] = int(ready.sum())
        self.guard.in_training_window[pair] = (
            0  # every stitched row is out of sample by construction
        )
        self._write_report()
        return out

    def populate(self, dataframe: pd.DataFrame, pair: str) -> pd.DataFrame:
        """Add the prediction columns to Freqtrade's candle dataframe (see module docs)."""
        if self.stitched_predictions is not None:
            return self._populate_stitched(dataframe, pair, self.stitched_predictions)
        bundle = self._load()
        if bundle is None:
            self.guard.unavailable[pair] = self._failure or "model unavailable"
            self._write_report()
            return self._empty(dataframe, [])
        labels = bundle.metadata.regime_labels
        candles = dataframe[["date", "open", "high", "low", "close", "volume"]].copy()
        candles["date"] = pd.to_datetime(candles["date"], utc=True).astype("datetime64[ns, UTC]")
        try:
            predictions = bundle.predict(candles.reset_index(drop=True))
        except Exception as exc:  # feature mismatch, bad data: degrade, log once
            message = f"prediction failed for {pair}: {exc}".splitlines()[0]
            if self.guard.unavailable.get(pair) != message:
                logger.error("do_predict=0: %s", message)
            self.guard.unavailable[pair] = message
            self._write_report()
            return self._empty(dataframe, labels)
        predictions.index = dataframe.index
        out = dataframe.copy()
        out["&-prediction"] = predictions["prediction"].to_numpy()
        out["&-p_up"] = predictions["p_up"].to_numpy() if "p_up" in predictions else np.nan
        out["&-regime"] = predictions["regime"].to_numpy() if "regime" in predictions else ""
        for label in labels:
            out[f"&-p_{label}"] = predictions[f"p_{label}"].to_numpy()
        if "reason" in predictions:
            out["&-reason"] = predictions["reason"].to_numpy()

        ready = np.isfinite(out["&-prediction"].to_numpy(dtype="float64"))
        train_end = pd.Timestamp(bundle.metadata.train_window.last)
        seen_in_training = (candles["date"] <= train_end).to_numpy()
        out["do_predict"] = (ready & ~seen_in_training).astype("int64")

        # Startup candles before the evaluation start are never traded: only count the rest.
        evaluated = (
            np.ones(len(out), dtype=bool)
            if self.evaluation_start is None
            else (candles["date"] >= self.evaluation_start).to_numpy()
        )
        excluded = int((seen_in_training & evaluated).sum())
        if excluded and self.guard.in_training_window.get(pair) != excluded:
            logger.warning(
                "LOOKAHEAD GUARD %s: %d of %d candles are at or before the end of %s's training "
                "window (%s): do_predict=0 for them. Backtest after %s for an honest result.",
                pair,
                excluded,
                len(out),
                self.model_uri,
                train_end,
                train_end,
            )
        self.guard.rows[pair] = len(out)
        self.guard.trusted[pair] = int(out["do_predict"].sum())
        self.guard.in_training_window[pair] = excluded
        self.guard.warmup[pair] = int((~ready & ~seen_in_training & evaluated).sum())
        self.guard.unavailable.pop(pair, None)
        self._write_report()
        return out

    def _write_report(self) -> None:
        if self.report_path is None:
            return
        payload = {
            "model_uri": self.model_uri,
            "train_window_last": None
            if self.bundle is None
            else self.bundle.metadata.train_window.last.isoformat(),
            **{k: v for k, v in vars(self.guard).items()},
        }
        write_text_atomic(self.report_path, json.dumps(payload, indent=2, sort_keys=True))
