"""What a running bot served: every candle's model columns as the strategy got them.

A paper or live bot records, for each pair and each new candle, the adapter's output
for that candle (``&-prediction``, ``&-p_up`` or ``&-exposure``, ``&-regime``,
``&-p_<regime>``, the forecast's range, ``do_predict``) and the model version that
served it, in ``<userdir>/predictions/<bot>.sqlite`` (``bot``: Freqtrade's
``bot_name``). Only the newest candle of each call is recorded: that is the one the bot
acts on; the history a bot computes when it starts was never served live.

``tradingbot backtest --live-predictions BOT`` trades exactly these columns (FreqAI's
``--freqai-backtest-live-models``) and compares them with what the recorded versions
predict from the same candles (:mod:`experiments.backtesting.live_predictions`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import TradingbotError
from common.layout import UserDir

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    pair TEXT NOT NULL,
    candle INTEGER NOT NULL,  -- the candle's open time, ns since the epoch (UTC)
    model_version TEXT,       -- models:/NAME/VERSION that served it
    do_predict INTEGER NOT NULL,
    columns TEXT NOT NULL,    -- JSON: the adapter's columns for the candle, without '&-'
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (pair, candle)
)
"""


class PredictionLogError(TradingbotError):
    """A bot's prediction log that is not there or cannot be read."""


def log_path(layout: UserDir, bot: str) -> Path:
    """Where bot ``bot`` records (its name made safe for a file name)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", bot).strip("._") or "bot"
    return layout.predictions / f"{safe}.sqlite"


class PredictionLog:
    """One bot's log (see the module doc); writes are one transaction per call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: dict[str, int] = {}  # pair -> newest candle recorded by this process

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.execute(SCHEMA)
            with db:
                yield db

    def record(self, pair: str, served: pd.DataFrame, model_version: str | None) -> bool:
        """Record the newest row of ``served`` (Freqtrade's dataframe with the adapter's
        columns) unless this process recorded that candle already. A log that cannot be
        written (a full disk, a locked file) is logged and skipped, never raised: the
        record must not stop a bot from trading. Returns whether the candle is recorded."""
        if served.empty:
            return False
        last = served.iloc[-1]
        candle = int(pd.Timestamp(last["date"]).value)
        if self._last.get(pair) == candle:
            return True
        try:
            self._write(pair, candle, last, served.columns, model_version)
        except (sqlite3.Error, OSError) as exc:
            logger.warning(
                "prediction log %s: %s's candle %s not recorded (%s)",
                self.path,
                pair,
                pd.Timestamp(candle, tz=UTC),
                exc,
            )
            return False
        self._last[pair] = candle
        return True

    def _write(
        self,
        pair: str,
        candle: int,
        last: pd.Series,
        names: pd.Index,
        model_version: str | None,
    ) -> None:
        columns = {
            str(name)[2:]: _plain(last[name]) for name in names if str(name).startswith("&-")
        }
        with self._connection() as db:
            db.execute(
                "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    pair,
                    candle,
                    model_version,
                    int(last.get("do_predict", 0)),
                    json.dumps(columns, sort_keys=True),
                    datetime.now(UTC).isoformat(),
                ),
            )

    def pairs(self) -> list[str]:
        if not self.path.exists():
            return []
        with self._connection() as db:
            return [
                str(r[0]) for r in db.execute("SELECT DISTINCT pair FROM predictions ORDER BY pair")
            ]

    def frame(self, pair: str) -> pd.DataFrame:
        """The pair's recorded candles in time order: ``date``, the model's columns
        (``prediction``, ``p_up``, ``regime``, ...), ``do_predict`` and ``model_version``."""
        with self._connection() as db:
            rows = db.execute(
                "SELECT candle, model_version, do_predict, columns FROM predictions "
                "WHERE pair = ? ORDER BY candle",
                (pair,),
            ).fetchall()
        records = [
            {
                "date": pd.Timestamp(candle, tz=UTC),
                **json.loads(columns),
                "do_predict": int(do_predict),
                "model_version": version,
            }
            for candle, version, do_predict, columns in rows
        ]
        return pd.DataFrame.from_records(records)


def open_log(layout: UserDir, bot: str) -> PredictionLog:
    """Bot ``bot``'s log for reading; an error naming the bots that have one if absent."""
    path = log_path(layout, bot)
    if not path.exists():
        known = sorted(p.stem for p in layout.predictions.glob("*.sqlite"))
        raise PredictionLogError(
            f"no predictions recorded by bot {bot!r} ({path})",
            hint=f"bots with a log: {', '.join(known)}"
            if known
            else "a paper or live bot records them as it runs (tradingbot paper)",
        )
    return PredictionLog(path)


def _plain(value: object) -> object:
    """A JSON value: numbers as floats (NaN as None), the rest as strings."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return None if not np.isfinite(number) else number
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
