"""The MLflow UI opens where a trader compares runs (issue 24 item 9): the link that
`tradingbot ui` prints shows the model-training view, the key figures as columns in
their order, best Calmar first. Rendered in headless Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from common.layout import UserDir
from ml import tracking
from ml.ui_view import BACKTEST_COLUMNS, TRAINING_COLUMNS, view_state

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_every_experiment_carries_the_comparison_view(tmp_path: Path) -> None:
    import json

    client = tracking.configure(tracking.default_tracking_uri(tmp_path), UserDir(tmp_path))
    trained = client.get_experiment(tracking.experiment_id(client, "btc_spec", UserDir(tmp_path)))
    state = json.loads(trained.tags["mlflow.sharedViewState.tradingbot-compare"])
    assert state["selectedColumns"][0] == "metrics.`overall.calmar`"
    assert state["orderByKey"] == "metrics.`overall.calmar`" and state["orderByAsc"] is False
    backtests = json.loads(view_state("backtests"))
    assert backtests["selectedColumns"][0] == "metrics.`mtm.calmar`"
    assert len(backtests["selectedColumns"]) == len(BACKTEST_COLUMNS)


class _ColumnHeaders(HTMLParser):
    """The text of every element with role=columnheader, by its aria-colindex."""

    VOID = frozenset({"area", "br", "col", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.open: list[tuple[int, int, list[str]]] = []
        self.found: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        self.depth += 1
        attributes = dict(attrs)
        if attributes.get("role") == "columnheader":
            self.open.append((self.depth, int(attributes.get("aria-colindex") or 0), []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <path/> and the like: no depth

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if self.open and self.open[-1][0] == self.depth:
            _, index, texts = self.open.pop()
            self.found.append((index, " ".join(" ".join(texts).split())))
        self.depth -= 1

    def handle_data(self, data: str) -> None:
        for _, _, texts in self.open:
            texts.append(data)


def _page_text(dom: str) -> str:
    import html
    import re

    text = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


@pytest.mark.slow
def test_the_printed_link_opens_the_model_training_view_with_metric_columns(
    tmp_path: Path,
) -> None:
    if CHROMIUM is None:
        pytest.skip(
            "Debian's chromium is not installed (CI installs it): the page was not rendered"
        )
    userdir = tmp_path / "ud"
    client = tracking.configure(tracking.default_tracking_uri(userdir), UserDir(userdir))
    experiment = tracking.experiment_id(client, "btc_spec", UserDir(userdir))
    for calmar in (1.5, 2.5):
        run = client.create_run(experiment)
        for name, _ in TRAINING_COLUMNS:
            client.log_metric(run.info.run_id, name, calmar if name == "overall.calmar" else 0.5)
        client.log_metric(run.info.run_id, "overall.accuracy", 0.51)  # not a column
        client.set_terminated(run.info.run_id)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tradingbot", "ui", "--userdir", str(userdir),
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        link = ""
        for line in process.stdout:  # the links come before the server starts
            if "btc_spec: http" in line:
                link = line.split("btc_spec: ", 1)[1].strip()
                break
        assert link.startswith(f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs?")
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert time.time() < deadline and process.poll() is None, "the UI did not come up"
                time.sleep(0.5)
        rendered = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1600,1000",
             "--virtual-time-budget=30000", "--dump-dom", link],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        text = _page_text(rendered.stdout)
        assert "Runs" in text and "Models" in text, text[:2000] or rendered.stderr[-2000:]
        # the GenAI view (what the experiment opened in before) has these; ours does not
        assert "Detect Issues" not in text and "Observability" not in text, text[:2000]
        assert "Sort: overall.calmar" in text, text[:2000]
        parser = _ColumnHeaders()
        parser.feed(rendered.stdout)
        placed = sorted((index, name) for index, name in parser.found if index and name)
        shown = [name for _, name in placed if name in dict(TRAINING_COLUMNS)]
        assert shown == [name for name, _ in TRAINING_COLUMNS], placed
        assert "overall.accuracy" not in [name for _, name in placed]
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
