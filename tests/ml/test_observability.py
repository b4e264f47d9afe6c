"""JSON logs carry correlation_id and run_id; live metrics land in a Prometheus textfile."""

from __future__ import annotations

import io
import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from common.layout import UserDir
from ml.observability import MetricsTextfile, bind, configure_json_logging
from ml.tracking import configure, default_tracking_uri, experiment_id, tracked_run
from strategies.risk import RiskManager, RiskSettings


def test_json_logs_name_the_invocation_and_the_run(tmp_path: Path) -> None:
    stream = io.StringIO()
    level = logging.getLogger().level
    handler = configure_json_logging(stream=stream)
    try:
        client = configure(default_tracking_uri(tmp_path), UserDir(tmp_path))
        experiment = experiment_id(client, "obs", UserDir(tmp_path))
        log = logging.getLogger("tradingbot.test")
        with bind(correlation="cid-42"):
            log.info("before the run")
            with tracked_run(experiment_id=experiment) as run:
                log.info("inside the run", extra={"fold": 3})
        lines = [
            json.loads(line) for line in stream.getvalue().splitlines() if "tradingbot.test" in line
        ]
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(level)
    assert [(r["message"], r["correlation_id"], r["run_id"]) for r in lines] == [
        ("before the run", "cid-42", None),
        ("inside the run", "cid-42", run.info.run_id),
    ]
    assert lines[1]["fold"] == 3 and lines[1]["level"] == "INFO"


def test_metrics_textfile_in_prometheus_format(tmp_path: Path) -> None:
    metrics = MetricsTextfile(tmp_path / "tradingbot.prom")
    risk = RiskManager(RiskSettings.for_userdir(UserDir(tmp_path)), metrics=metrics)
    risk.enable_breaker("incident", minutes=5)
    assert not risk.check_entry("BTC/USDT", Decimal(1), [], Decimal(100)).allowed
    metrics.inc("tradingbot_inference_seconds_sum", 0.004)
    metrics.inc("tradingbot_inference_seconds_count")
    metrics.inc("tradingbot_predictions_total", pair="BTC/USDT")
    metrics.flush()
    text = (tmp_path / "tradingbot.prom").read_text()
    assert "# TYPE tradingbot_risk_blocks_total counter" in text
    assert 'tradingbot_risk_blocks_total{code="cb_active"} 1' in text
    assert 'tradingbot_incidents_total{severity="warning"} 1' in text
    assert 'tradingbot_predictions_total{pair="BTC/USDT"} 1' in text
    assert "tradingbot_inference_seconds_count 1" in text


def test_adapter_live_path_reports_latency_and_counts(tmp_path: Path) -> None:
    from ml.serving import ModelAdapter

    metrics = MetricsTextfile(tmp_path / "live.prom")
    adapter = ModelAdapter(
        "models:/absent@champion",
        tracking_uri=default_tracking_uri(tmp_path),
        metrics=metrics,
        retry_seconds=3600,
    )
    from features.data.synthetic import generate

    candles, _ = generate(300, seed=1)
    for end in (298, 299, 300):
        adapter.populate(candles.iloc[:end], "BTC/USDT", live=True)
    text = (tmp_path / "live.prom").read_text()
    assert "tradingbot_inference_seconds_count 3" in text
    assert 'tradingbot_do_predict_zero_total{pair="BTC/USDT"} 3' in text  # no model: never trusted


def test_json_logging_for_our_loggers_inside_a_host() -> None:
    from ml.observability import correlation_id, json_logging_for

    stream = io.StringIO()
    handler = json_logging_for(("ml.test_host",), stream=stream)
    token = correlation_id.set("bot-1")
    try:
        logging.getLogger("ml.test_host.adapter").warning("do_predict=0: model unavailable")
    finally:
        correlation_id.reset(token)
        logging.getLogger("ml.test_host").removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["correlation_id"] == "bot-1" and record["logger"] == "ml.test_host.adapter"
    assert record["level"] == "WARNING"


def test_an_unwritable_metrics_textfile_never_stops_a_decision(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """populate_indicators once raised for every pair (no entries, no exits either)."""
    from ml.observability import MetricsTextfile

    (tmp_path / "a_file").write_text("a file where a folder is expected")
    metrics = MetricsTextfile(tmp_path / "a_file" / "tradingbot.prom")
    metrics.inc("tradingbot_predictions_total", pair="BTC/USDT")
    with caplog.at_level("WARNING", logger="tradingbot.metrics"):
        metrics.flush()
        metrics.flush()
    assert caplog.text.count("not written") == 1  # logged once while it keeps failing
