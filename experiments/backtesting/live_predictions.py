"""Backtests on what a running bot served (``tradingbot backtest --live-predictions BOT``).

FreqAI's ``--freqai-backtest-live-models`` replays the predictions a live bot made. Here
a paper or live bot records each candle's model columns as it serves them
(:mod:`ml.serving.prediction_log`); a backtest trades exactly those columns over the
span they cover, like a walk-forward backtest trades stitched out-of-sample predictions,
and says where they differ from what the recorded model versions predict from the user
dir's candles for the same candles: a difference means the bot saw other candles (a
late or revised candle, a gap) or served something else than the registry holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.layout import UserDir, pair_to_filename
from features.data import load_candles, reference_candles
from features.timerange import TimeRange
from ml.serving.prediction_log import PredictionLog, PredictionLogError
from ml.serving.served import WalkForwardInputs

# what counts as the same forecast: float32 networks and thread counts move the last digits
RTOL, ATOL = 1e-6, 1e-9
SHOWN = 5  # differing candles listed per pair


@dataclass
class PairComparison:
    """One pair's recorded forecasts against the recorded versions' batch predictions."""

    pair: str
    recorded: int = 0
    compared: int = 0  # recorded candles with a version and the user dir's candle
    differing: int = 0
    max_abs_difference: float = 0.0
    first_differences: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    not_compared: str = ""  # why some were not (no version recorded, candles missing)


def live_prediction_inputs(
    log: PredictionLog, pairs: Sequence[str], out: Path
) -> tuple[WalkForwardInputs, dict[str, pd.DataFrame]]:
    """Each pair's recorded columns as a stitched predictions file (``do_predict`` as the
    bot decided it), the span every pair covers, and the recorded frames."""
    recorded = set(log.pairs())
    missing = [pair for pair in pairs if pair not in recorded]
    if missing:
        raise PredictionLogError(
            f"bot log {log.path.name} has no predictions for {', '.join(missing)}",
            hint=f"it recorded: {', '.join(sorted(recorded)) or 'nothing yet'}",
        )
    out.mkdir(parents=True, exist_ok=True)
    frames, files, spans = {}, {}, []
    for pair in pairs:
        frame = log.frame(pair)
        frames[pair] = frame
        path = out / f"live_{pair_to_filename(pair)}.parquet"
        frame.drop(columns=["model_version", "reason"], errors="ignore").to_parquet(path)
        files[pair] = path
        first, last = frame["date"].iloc[0], frame["date"].iloc[-1]
        spans.append((first.floor("D"), last.floor("D") + pd.Timedelta(days=1)))
    start, end = max(s for s, _ in spans), min(e for _, e in spans)
    if start >= end:
        raise PredictionLogError(
            "the pairs' recorded spans do not overlap: backtest them one by one"
        )
    timerange = str(TimeRange(start=start.to_pydatetime(), end=end.to_pydatetime()))
    if len(pairs) == 1:
        return WalkForwardInputs(files[pairs[0]], {}, timerange, 0), frames
    return WalkForwardInputs(None, files, timerange, 0), frames


def compare_with_registry(
    frame: pd.DataFrame, pair: str, layout: UserDir, exchange: str, timeframe: str
) -> PairComparison:
    """The recorded forecasts of ``pair`` against each recorded version's batch
    prediction of the same candles from the user dir (see the module doc)."""
    from ml.model_source import load_bundle

    result = PairComparison(pair, recorded=len(frame))
    source = (
        "exposure"
        if frame.get("exposure", pd.Series(dtype=float)).notna().any()
        else ("p_up" if frame.get("p_up", pd.Series(dtype=float)).notna().any() else "prediction")
    )
    candles = load_candles(layout, exchange, pair, timeframe)
    known = set(pd.to_datetime(candles["date"], utc=True))
    reasons = []
    for version, rows in frame.groupby(frame["model_version"].fillna("")):
        if not version:
            reasons.append(f"{len(rows)} recorded before a model loaded")
            continue
        rows = rows[rows["date"].isin(known)]
        if len(rows) < len(frame[frame["model_version"] == version]):
            reasons.append("candles the user dir lacks (tradingbot data import)")
        if rows.empty:
            continue
        bundle = load_bundle(str(version)).for_pair(pair)
        upto = candles[pd.to_datetime(candles["date"], utc=True) <= rows["date"].iloc[-1]]
        references = reference_candles(bundle.feature_spec, layout, exchange, timeframe)
        batch = bundle.predict(upto.reset_index(drop=True), references)
        batch["date"] = pd.to_datetime(batch["date"], utc=True)
        theirs = rows.set_index("date")[source].astype("float64")
        ours = batch.set_index("date")[source].reindex(theirs.index).astype("float64")
        same = np.isclose(theirs, ours, rtol=RTOL, atol=ATOL, equal_nan=True)
        result.compared += len(theirs)
        result.differing += int((~same).sum())
        gaps = np.abs(theirs.to_numpy() - ours.to_numpy())
        if np.isfinite(gaps).any():
            result.max_abs_difference = max(result.max_abs_difference, float(np.nanmax(gaps)))
        for date in theirs.index[~same][: SHOWN - len(result.first_differences)]:
            result.first_differences.append(
                (date.isoformat(), _number(theirs.loc[date]), _number(ours.loc[date]))
            )
    result.not_compared = "; ".join(dict.fromkeys(reasons))
    return result


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def live_tags(bot: str, compared: Sequence[PairComparison]) -> dict[str, str]:
    """The backtest run's record of what it traded and how that compares."""
    tags = {
        "live_predictions.bot": bot,
        "live_predictions.recorded": str(sum(c.recorded for c in compared)),
        "live_predictions.compared": str(sum(c.compared for c in compared)),
        "live_predictions.differing": str(sum(c.differing for c in compared)),
        "live_predictions.max_abs_difference": f"{max((c.max_abs_difference for c in compared), default=0.0):.3g}",
    }
    for comparison in compared:
        if comparison.first_differences:
            key = f"live_predictions.first_differences.{pair_to_filename(comparison.pair)}"
            tags[key] = "; ".join(
                f"{date}: served {served}, registry {batch}"
                for date, served, batch in comparison.first_differences
            )[:5000]
        if comparison.not_compared:
            key = f"live_predictions.not_compared.{pair_to_filename(comparison.pair)}"
            tags[key] = comparison.not_compared[:5000]
    return tags
