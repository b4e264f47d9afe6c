"""Structured logs and live metrics.

* :func:`configure_json_logging` makes every log record one JSON object with the
  current ``correlation_id`` (one per CLI invocation or bot process) and
  ``run_id`` (the MLflow run being written), bound with :func:`bind`.
* :class:`MetricsTextfile` keeps counters and gauges of the live path (inference
  latency, predictions, ``do_predict = 0``, risk blocks, incidents) and writes them
  in Prometheus' text format for node_exporter's textfile collector.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from common.atomic import write_text_atomic

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


@contextlib.contextmanager
def bind(*, correlation: str | None = None, run: str | None = None) -> Iterator[None]:
    """Attach ``correlation_id``/``run_id`` to every log record inside the block."""
    tokens = []
    if correlation is not None:
        tokens.append((correlation_id, correlation_id.set(correlation)))
    if run is not None:
        tokens.append((run_id, run_id.set(run)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:12]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": correlation_id.get(),
            "run_id": run_id.get(),
        }
        payload.update(
            {k: v for k, v in vars(record).items() if k not in _STANDARD and k not in payload}
        )
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_json_logging(
    level: int = logging.INFO, stream: object | None = None
) -> logging.Handler:
    """Route the root logger through one JSON handler (on stderr unless ``stream``)."""
    handler = logging.StreamHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing.formatter, JsonFormatter):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


METRIC_HELP: dict[str, tuple[str, str]] = {
    "tradingbot_inference_seconds_sum": (
        "counter",
        "Total time spent in the adapter's prediction path.",
    ),
    "tradingbot_inference_seconds_count": (
        "counter",
        "Calls of the adapter's prediction path.",
    ),
    "tradingbot_inference_last_seconds": ("gauge", "Duration of the latest prediction call."),
    "tradingbot_predictions_total": ("counter", "Candles predicted with do_predict = 1."),
    "tradingbot_do_predict_zero_total": (
        "counter",
        "Candles given do_predict = 0 (not trusted).",
    ),
    "tradingbot_risk_blocks_total": (
        "counter",
        "Entries or backtests refused by the risk manager.",
    ),
    "tradingbot_incidents_total": ("counter", "Incidents recorded by the risk manager."),
}


def json_logging_for(names: tuple[str, ...], stream: object | None = None) -> logging.Handler:
    """JSON lines for our own loggers only (inside a host such as Freqtrade, whose own
    logging stays as it is): they stop propagating to the host's plain-text handlers."""
    handler = logging.StreamHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter())
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not isinstance(h.formatter, JsonFormatter)]
        logger.addHandler(handler)
        logger.propagate = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
    return handler


class MetricsTextfile:
    """Counters and gauges written atomically in Prometheus' text exposition format."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        self._failing = False

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self.values[(name, tuple(sorted(labels.items())))] = value

    def render(self) -> str:
        lines = []
        with self._lock:
            names = sorted({name for name, _ in self.values})
            for name in names:
                kind, text = METRIC_HELP.get(name, ("untyped", name))
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                for (metric, labels), value in sorted(self.values.items()):
                    if metric == name:
                        rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                        lines.append(
                            f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}"
                        )
        return "\n".join(lines) + "\n"

    def flush(self) -> None:
        """Write the file; best effort. Metrics are a side effect of a decision, so a
        textfile that cannot be written is logged (once until it works again) and never
        stops the decision, an exit least of all."""
        try:
            write_text_atomic(self.path, self.render())
        except Exception as exc:
            if not self._failing:
                logging.getLogger("tradingbot.metrics").warning(
                    "metrics textfile %s not written (%s: %s); trading goes on",
                    self.path,
                    type(exc).__name__,
                    exc,
                )
            self._failing = True
        else:
            self._failing = False
