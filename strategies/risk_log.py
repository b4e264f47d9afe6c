"""The risk manager's record: incidents and backtest drawdowns in SQLite, and JSON logs.

A mixin of :class:`strategies.risk.RiskManager` (it uses the manager's ``settings``,
``metrics``, ``correlation_id`` and ``run_id``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from datetime import UTC, datetime

from common.sqlite import open_database
from ml.observability import MetricsTextfile
from strategies.risk_settings import RiskSettings

logger = logging.getLogger("tradingbot.risk")
INCIDENT_LOCK_TIMEOUT_S = 2.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    severity TEXT NOT NULL,
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    log_excerpt_path TEXT,
    correlation_id TEXT,
    created_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS backtest_runs (
    run_id TEXT PRIMARY KEY,
    max_drawdown_account TEXT NOT NULL,
    created_utc TEXT NOT NULL
);
"""


class IncidentLog:
    settings: RiskSettings
    metrics: MetricsTextfile | None
    correlation_id: str
    run_id: str | None

    def _db(self, timeout: float = 30.0) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return open_database(self.settings.db_path, SCHEMA, timeout=timeout)

    def record_incident(
        self, severity: str, code: str, description: str, *, log_excerpt_path: str | None = None
    ) -> int:
        created = datetime.now(UTC).isoformat(timespec="seconds")
        # short: an incident is recorded inside a decision, which must not wait on a lock
        with self._db(timeout=INCIDENT_LOCK_TIMEOUT_S) as db:
            cursor = db.execute(
                "INSERT INTO incidents (run_id, severity, code, description, log_excerpt_path, correlation_id, created_utc)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self.run_id,
                    severity,
                    code,
                    description,
                    log_excerpt_path,
                    self.correlation_id,
                    created,
                ),
            )
            incident_id = int(cursor.lastrowid or 0)
        if self.metrics is not None:
            self.metrics.inc("tradingbot_incidents_total", severity=severity)
            self.metrics.flush()
        self._log(
            logging.ERROR if severity == "error" else logging.WARNING,
            code,
            description,
            incident_id=incident_id,
        )
        return incident_id

    def try_record_incident(self, severity: str, code: str, description: str) -> int | None:
        """:meth:`record_incident` that never raises: the refusal it documents must stand
        even when the incident database cannot be written (the failure is logged)."""
        try:
            return self.record_incident(severity, code, description)
        except Exception as exc:  # the database, the metrics file: nothing may undo a refusal
            self._log(
                logging.ERROR,
                code,
                f"{description} (the incident could not be recorded in "
                f"{self.settings.db_path}: {exc!r})",
            )
            return None

    def incidents(self, limit: int = 20) -> list[dict[str, object]]:
        with self._db() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT * FROM incidents ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [dict(row) for row in rows]

    def record_backtest(self, run_id: str, max_drawdown_account: float) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO backtest_runs (run_id, max_drawdown_account, created_utc) VALUES (?, ?, ?)",
                (
                    run_id,
                    str(max_drawdown_account),
                    datetime.now(UTC).isoformat(timespec="microseconds"),
                ),
            )

    def last_backtest_drawdown(self) -> float | None:
        with self._db() as db:
            row = db.execute(
                "SELECT max_drawdown_account FROM backtest_runs ORDER BY created_utc DESC LIMIT 1"
            ).fetchone()
        return None if row is None else float(row[0])

    def _log(self, level: int, event: str, message: str, **fields: object) -> None:
        payload = {
            "event": event,
            "message": message,
            "correlation_id": self.correlation_id,
            "run_id": self.run_id,
            **fields,
        }
        logger.log(level, json.dumps(payload, default=str))
