"""The FreqAI-style adapter: registered models inside Freqtrade strategies.

A strategy calls :meth:`ModelAdapter.populate` from ``populate_indicators``. It
loads the bundle behind a registry URI (default ``models:/NAME@champion``),
computes the features with the bundle's own spec, and adds:

* ``&-prediction`` (class 0/1 or forward return), ``&-p_up`` (classifiers),
  ``&-exposure`` (an allocation's share of equity to hold; sized: with
  ``&-exposure_unsized`` and ``&-volatility``),
* ``&-regime`` and ``&-p_<label>`` (filtered regime probabilities),
* ``&-reason`` (the reasoning model's sentence, when the model has one),
* ``do_predict``: 1 = trust the row, 0 = don't (warm-up, inside or before the
  bundle's training window, model unavailable, or, with ``[trust]
  dissimilarity_threshold``, a row unlike the training data: ``DI_values`` above
  it, as FreqAI's ``DI_threshold``), with the reason logged and counted.

A bundle serves only the pair it was trained on: asked for another pair it gives
``do_predict = 0`` and says so. A whitelist is served by :class:`PairModels`, one
adapter per pair from a model URI with ``{pair}`` (``models:/SPEC__{pair}@champion``,
the pair written ``BASE_QUOTE``).

In backtests the whole dataframe is predicted in one batch, causally (every
feature, regime probability and sequence uses earlier candles only). Candles at
or before the end of the bundle's training window get ``do_predict = 0``: a
backtest overlapping the training window warns loudly and reports how many
candles were excluded. A missing model, an unreachable registry or a feature
mismatch gives ``do_predict = 0`` and one log line per retry interval, never an
exception that would put Freqtrade in a crash loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.bundle import ModelBundle
from ml.forecast_statistics import recent_range
from ml.observability import MetricsTextfile
from ml.serving.columns import (
    candle_frame,
    candle_stamps,
    regime_codes,
    regime_column,
    stitched_columns,
    untrusted,
    with_columns,
)
from ml.serving.guard import GuardReport
from ml.serving.live import LiveState
from ml.serving.loading import checked_candidate, first_line, live_window, load_served
from ml.serving.prediction_log import PredictionLog

logger = logging.getLogger(__name__)


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
        live_window: int = 1000,
        metrics: MetricsTextfile | None = None,
        refresh_minutes: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.model_uri = model_uri
        # Model refresh: how often (at most) the registry is asked where the alias points;
        # None: never (backtests). 0: at every populate call (replays, tests).
        self.refresh_seconds = None if refresh_minutes is None else 60.0 * refresh_minutes
        self.clock = clock
        self._polled_at: float | None = None
        self._refused: tuple[str, str] | None = None  # (version, why) last refused
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
        # Live: candles of history the features are computed on (>= the longest window plus
        # the settling time of TA-Lib's exponential indicators), and per-pair state.
        self.live_window = live_window
        self.metrics = metrics  # live metrics (Prometheus textfile), when configured
        self._live: dict[str, LiveState] = {}
        self._references: dict[str, pd.DataFrame] = {}  # of the populate call in progress
        # a running bot: what it served, candle by candle (ml.serving.prediction_log)
        self.prediction_log = prediction_log

    # -- loading ---------------------------------------------------------------------

    def _load(self) -> ModelBundle | None:
        if self.bundle is not None:
            return self.bundle
        if self._failed_at is not None and time.monotonic() - self._failed_at < self.retry_seconds:
            return None
        try:
            self.bundle, self.model_version = load_served(self.model_uri, self.tracking_uri)
            self._polled_at = self.clock()
        except Exception as exc:  # any failure must degrade to do_predict = 0, not crash
            self._failed_at = time.monotonic()
            self._failure = f"model {self.model_uri} unavailable: {exc}".splitlines()[0]
            logger.error("do_predict=0: %s (retrying in %.0f s)", self._failure, self.retry_seconds)
            return None
        self._failed_at, self._failure = None, None
        logger.info(
            "loaded %s (version %s): %s trained on %s .. %s",
            self.model_uri,
            self.model_version or "-",
            self.bundle.metadata.forecaster_kind,
            self.bundle.metadata.train_window.first,
            self.bundle.metadata.train_window.last,
        )
        return self.bundle

    def _served_version(self) -> str | None:
        """``models:/NAME/VERSION`` of the bundle serving now (None before one loaded)."""
        if self.bundle is None or self.model_version is None:
            return None
        return f"models:/{self.bundle.metadata.name}/{self.model_version}"

    def reference_pairs(self, pair: str) -> tuple[str, ...]:
        """The pairs whose candles the model of ``pair`` needs beside its own (none when
        the model cannot be loaded now: it will say why when asked to predict). None in
        walk-forward mode either: the stitched predictions already hold what they gave."""
        if self.stitched_predictions is not None:
            return ()
        bundle = self._load()
        return () if bundle is None else bundle.reference_pairs

    def _window(self, bundle: ModelBundle) -> int:
        return live_window(bundle, self.live_window)

    # -- prediction ------------------------------------------------------------------

    def _populate_stitched(self, dataframe: pd.DataFrame, pair: str, path: Path) -> pd.DataFrame:
        """Walk-forward mode: each candle gets the prediction of the fold bundle whose
        out-of-sample window contains it; candles outside every window get do_predict = 0."""
        stitched = pd.read_parquet(path)
        out = stitched_columns(dataframe, stitched)
        self.guard.rows[pair] = len(out)
        self.guard.trusted[pair] = int(out["do_predict"].sum())
        if "outlier" in stitched:
            self.guard.outliers[pair] = int((stitched["outlier"] > 0).sum())
        self.guard.in_training_window[pair] = 0  # every stitched row is out of sample
        self._write_report()
        return out

    def populate(
        self,
        dataframe: pd.DataFrame,
        pair: str,
        *,
        live: bool = False,
        references: Mapping[str, pd.DataFrame] | None = None,
    ) -> pd.DataFrame:
        """Add the prediction columns to Freqtrade's candle dataframe (see module docs).

        ``live``: only candles newer than the last call are processed (features on a
        bounded tail, the online regime filter carried forward, the forecaster on the
        new rows); the first call, or a frame that does not continue the last one,
        is processed whole. ``references``: Freqtrade's dataframes of the model's
        reference pairs (:meth:`reference_pairs`), when it has any.
        """
        if self.stitched_predictions is not None:
            return self._populate_stitched(dataframe, pair, self.stitched_predictions)
        started = time.perf_counter()
        self._references = {  # our candle frames, for this call
            name: candle_frame(
                frame, frame["date"], last=None if not live else 2 * self.live_window
            )
            for name, frame in (references or {}).items()
        }
        out = self._populate(dataframe, pair, live=live)
        if live and self.prediction_log is not None:
            self.prediction_log.record(pair, out, self._served_version())
        if self.metrics is not None and len(out):
            elapsed = time.perf_counter() - started
            self.metrics.inc("tradingbot_inference_seconds_sum", elapsed)
            self.metrics.inc("tradingbot_inference_seconds_count")
            self.metrics.set("tradingbot_inference_last_seconds", elapsed)
            trusted = bool(out["do_predict"].iloc[-1] == 1)
            name = "tradingbot_predictions_total" if trusted else "tradingbot_do_predict_zero_total"
            self.metrics.inc(name, pair=pair)
            self.metrics.flush()
        return out

    def _refresh(self, dataframe: pd.DataFrame, pair: str) -> None:
        """Switch to the version the alias points at now, at most every ``refresh_seconds``.

        Called before a populate call computes anything, so a switch falls on a candle
        boundary. A version that does not load, is for another pair or timeframe, or
        fails to predict the current candles is refused: the old one keeps serving and
        the reason is logged (once per version). An unreachable registry changes nothing."""
        moved = self._moved_version()
        if moved is None:
            return
        name, version = moved
        candidate = self._candidate(dataframe, pair, name, version)
        if candidate is None:
            return
        logger.warning(
            "model refresh: %s now serves v%s (was v%s) from the candle after %s",
            self.model_uri,
            version,
            self.model_version,
            pd.Timestamp(dataframe["date"].iloc[-1]) if len(dataframe) else "-",
        )
        self.bundle, self.model_version, self._refused = candidate, version, None
        self._live.clear()  # the regime filter and features start again with the new model
        if self.metrics is not None:
            self.metrics.inc("tradingbot_model_refreshes_total")

    def _moved_version(self) -> tuple[str, str] | None:
        """(name, version) when it is time to poll and the alias names a version not served
        and not refused before; None otherwise."""
        if self.refresh_seconds is None or self.bundle is None:
            return None
        now = self.clock()
        if self._polled_at is not None and now - self._polled_at < self.refresh_seconds:
            return None
        self._polled_at = now
        from ml.model_source import served_version

        try:
            resolved = served_version(self.model_uri)
        except Exception as exc:
            logger.warning(
                "model refresh: registry not answering (%s); keeps serving v%s",
                first_line(exc),
                self.model_version,
            )
            return None
        if resolved is None or resolved[1] == self.model_version:
            return None
        if self._refused is not None and self._refused[0] == resolved[1]:
            return None
        return resolved

    def _candidate(
        self, dataframe: pd.DataFrame, pair: str, name: str, version: str
    ) -> ModelBundle | None:
        """The new version's bundle if it is for the same market and predicts these candles;
        None (and the reason logged, once) if not."""
        assert self.bundle is not None
        try:
            uri = f"models:/{name}/{version}"
            candidate = checked_candidate(
                self.bundle, uri, dataframe, pair, self.live_window, self._references
            )
        except Exception as exc:
            self._refused = (version, first_line(exc))
            logger.error(
                "model refresh: %s v%s refused, v%s keeps serving: %s",
                name,
                version,
                self.model_version,
                self._refused[1],
            )
            return None
        return candidate

    def _populate(self, dataframe: pd.DataFrame, pair: str, *, live: bool) -> pd.DataFrame:
        self._refresh(dataframe, pair)
        bundle = self._load()
        if bundle is None:
            self.guard.unavailable[pair] = self._failure or "model unavailable"
            self._write_report()
            return untrusted(dataframe, [])
        if not bundle.serves(pair):
            # A model fitted on one market says nothing reliable about another.
            trained_on = ", ".join(bundle.metadata.pairs) or bundle.metadata.pair
            message = (
                f"{self.model_uri} was trained on {trained_on}, not {pair}: give "
                "each pair its own model (a model URI with {pair}, e.g. "
                "models:/SPEC__{pair}@champion) or a pooled model trained on it"
            )
            if self.guard.unavailable.get(pair) != message:
                logger.error("do_predict=0: %s", message)
            self.guard.unavailable[pair] = message
            self._write_report()
            return untrusted(dataframe, [])
        bundle = bundle.for_pair(pair)  # a pooled model as this pair's (others: itself)
        labels = bundle.metadata.regime_labels
        dates = dataframe["date"]
        stamps = candle_stamps(dates)
        try:
            columns = (
                self._live_columns(bundle, dataframe, dates, stamps, pair)
                if live
                else self._batch_columns(bundle, dataframe, dates)
            )
        except Exception as exc:  # feature mismatch, bad data: degrade, log once
            message = f"prediction failed for {pair}: {exc}".splitlines()[0]
            if self.guard.unavailable.get(pair) != message:
                logger.error("do_predict=0: %s", message)
            self.guard.unavailable[pair] = message
            self._live.pop(pair, None)
            self._write_report()
            return untrusted(dataframe, labels)
        rows = len(dataframe)
        added: dict[str, Any] = {
            "&-prediction": columns["prediction"],
            "&-p_up": columns.get("p_up", np.full(rows, np.nan)),
            "&-exposure": columns.get("exposure", np.full(rows, np.nan)),
            "&-regime": regime_column(labels, columns.get("regime", np.full(rows, -1))),
        }
        for label in labels:
            added[f"&-p_{label}"] = columns[f"p_{label}"]
        for column in ("exposure_unsized", "volatility"):  # a sized allocation's
            if column in columns:
                added[f"&-{column}"] = columns[column]
        if "reason" in columns:
            added["&-reason"] = columns["reason"]
        ready = np.isfinite(np.asarray(columns["prediction"], dtype="float64"))
        train_end = pd.Timestamp(bundle.metadata.train_window.last)
        seen_in_training = stamps <= train_end.value
        dissimilar = np.zeros(rows, dtype=bool)
        threshold = bundle.dissimilarity_threshold
        if threshold is not None and "di" in columns:
            di = np.asarray(columns["di"], dtype="float64")
            added["DI_values"] = di  # FreqAI's column name
            dissimilar = np.nan_to_num(di, nan=0.0) > threshold
        expired = np.zeros(rows, dtype=bool)
        if bundle.expiration_hours is not None:
            expiry = train_end + pd.Timedelta(hours=bundle.expiration_hours)
            expired = stamps > expiry.value
            if expired[-1] and self.guard.expired.get(pair, 0) == 0:
                logger.warning(
                    "do_predict=0 %s: %s expired at %s (trained until %s, expiration_hours %g)",
                    pair,
                    self.model_uri,
                    expiry,
                    train_end,
                    bundle.expiration_hours,
                )
        ranges = recent_range(columns, ready & ~seen_in_training, bundle.statistics_candles)
        added.update({f"&-{name}": values for name, values in ranges.items()})
        # [pipeline]'s outlier detectors: a row unlike the training rows is not traded
        outlier = np.nan_to_num(np.asarray(columns.get("outlier", np.zeros(rows)), float)) > 0
        added["do_predict"] = (
            ready & ~seen_in_training & ~dissimilar & ~expired & ~outlier
        ).astype("int64")
        self._guard(
            pair,
            stamps,
            ready,
            seen_in_training,
            train_end,
            dissimilar,
            expired,
            outlier,
            live=live,
        )
        return with_columns(dataframe, added)

    def _guard(
        self,
        pair: str,
        stamps: np.ndarray,
        ready: np.ndarray,
        seen_in_training: np.ndarray,
        train_end: pd.Timestamp,
        dissimilar: np.ndarray,
        expired: np.ndarray,
        outlier: np.ndarray,
        *,
        live: bool = False,
    ) -> None:
        # Startup candles before the evaluation start are never traded: only count the rest.
        # Live, only the newest candle is traded: history in the training window is no news.
        evaluated = (
            np.ones(len(stamps), dtype=bool)
            if self.evaluation_start is None
            else stamps >= pd.Timestamp(self.evaluation_start).value
        )
        if live:
            evaluated = np.zeros(len(stamps), dtype=bool)
            evaluated[-1:] = True
        excluded = int((seen_in_training & evaluated).sum())
        if excluded and self.guard.in_training_window.get(pair) != excluded:
            logger.warning(
                "LOOKAHEAD GUARD %s: %d of %d evaluated candles are at or before the end of %s's "
                "training window (%s): do_predict=0 for them. Backtest after it for an honest result.",
                pair,
                excluded,
                int(evaluated.sum()),
                self.model_uri,
                train_end,
            )
        self.guard.record(pair, ready, seen_in_training, dissimilar, evaluated, expired, outlier)
        self._write_report()

    # -- backtests: one batch ----------------------------------------------------------

    def _batch_columns(
        self, bundle: ModelBundle, dataframe: pd.DataFrame, dates: pd.Series
    ) -> dict[str, Any]:
        predictions = bundle.predict(candle_frame(dataframe, dates), self._references)
        columns = {
            column: predictions[column].to_numpy()
            for column in predictions.columns
            if column != "date"
        }
        if "regime" in columns:
            columns["regime"] = regime_codes(bundle.metadata.regime_labels, columns["regime"])
        return columns

    # -- live: only new candles ----------------------------------------------------------

    def _live_columns(
        self,
        bundle: ModelBundle,
        dataframe: pd.DataFrame,
        dates: pd.Series,
        stamps: np.ndarray,
        pair: str,
    ) -> dict[str, Any]:
        state = self._live.get(pair)
        if state is None or not state.continued_by(stamps):
            candles = candle_frame(dataframe, dates)
            state = LiveState.bootstrap(
                bundle, candles, stamps, self._window(bundle), self._references
            )
            self._live[pair] = state
        else:  # only the bounded tail is ever looked at: the cost does not grow with history
            candles = candle_frame(dataframe, dates, last=state.window)
            state.advance(bundle, candles, stamps, self._references)
        return state.aligned(stamps)

    def _write_report(self) -> None:
        if self.report_path is not None:
            trained_until = None if self.bundle is None else self.bundle.metadata.train_window.last
            self.guard.write(self.report_path, self.model_uri, trained_until)
