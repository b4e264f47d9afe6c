"""`tradingbot report`: Markdown and a self-contained HTML page, rendered in headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from common.layout import UserDir
from experiments.reporting.report import (
    BACKTEST_COLUMNS,
    MODEL_COLUMNS,
    ReportError,
    backtest_leaderboard,
    build_report,
    formatted,
    model_leaderboard,
)
from ml.tracking import default_tracking_uri
from tests.conftest import CliResult

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _store(tmp_path: Path) -> MlflowClient:
    from ml.tracking import configure

    return configure(default_tracking_uri(tmp_path), UserDir(tmp_path))


def test_tuned_versions_show_their_test_window_numbers_not_nan(tmp_path: Path) -> None:
    """Before: the leaderboard read overall.* only, and tuning logs test.*/validation.*."""
    client = _store(tmp_path)
    experiment = client.create_experiment("tuned")
    tuned = client.create_run(experiment)
    for key, value in {
        "test.profit_total": 0.123,
        "test.calmar": 1.5,
        "test.sharpe": 0.81,
        "test.max_drawdown": 0.2,
        "validation.calmar": 9.0,
    }.items():
        client.log_metric(tuned.info.run_id, key, value)
    trained = client.create_run(experiment)
    client.log_metric(trained.info.run_id, "overall.calmar", 0.7)
    client.log_metric(trained.info.run_id, "overall.total_return", 0.05)
    for name, run in (("tuned_model", tuned), ("trained_model", trained)):
        client.create_registered_model(name)
        client.create_model_version(name, source=str(tmp_path), run_id=run.info.run_id)
    table = model_leaderboard(client)
    rows = {row.model: row for row in table.itertuples(index=False)}
    assert list(table["model"]) == ["tuned_model", "trained_model"]  # best Calmar first
    assert rows["tuned_model"].evaluated == "tune test"
    shown = formatted(table, MODEL_COLUMNS).set_index("model")
    assert shown.loc["tuned_model", "return"] == "12.3%"
    assert shown.loc["tuned_model", "Calmar"] == "1.50"
    assert shown.loc["tuned_model", "max DD"] == "20.0%"
    assert shown.loc["tuned_model", "accuracy"] == "-"  # not logged: a dash, never NaN
    assert shown.loc["trained_model", "evaluated"] == "walk-forward"
    assert shown.loc["trained_model", "return"] == "5.0%"


def test_backtests_are_formatted_and_a_guarded_one_is_flagged(tmp_path: Path) -> None:
    client = _store(tmp_path)
    experiment = client.create_experiment("backtests")
    run = client.create_run(
        experiment,
        tags={"strategy": "RegimeStrategy", "pair": "BTC/USDT", "timeframe": "1h"},
    )
    for key, value in {
        "closed.profit_total": 4.322,
        "mtm.drawdown_vs_buy_hold": 0.5,
        "guard.excluded_candles": 1200,
        "closed.trades": 31,
    }.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    table, _ = backtest_leaderboard(client)
    shown = formatted(table, BACKTEST_COLUMNS).iloc[0]
    assert shown["profit (closed trades)"] == "432.2%" and shown["DD vs B&H (mtm)"] == "0.50x"
    assert shown["trades"] == "31" and shown["Calmar (mtm)"] == "-"
    assert shown["guard"] == "1,200 candles withheld"


def test_the_report_groups_by_market_and_charts_the_backtest_asked_for(tmp_path: Path) -> None:
    """Issue 24 item 7: models of different markets were ranked together (BNB first), and
    the charts showed the newest backtest, a paper replay's two-week comparison."""
    from experiments.reporting.report import charted_backtest
    from ml.tracking import PURPOSE_TAG

    client = _store(tmp_path)
    trained = client.create_experiment("trained")
    versions = (("bnb", "BNB/USDT", 9.0), ("btc_a", "BTC/USDT", 1.0), ("btc_b", "BTC/USDT", 2.0))
    for name, pair, calmar in versions:
        tags = {"pair": pair, "timeframe": "1d", "data.first": "2018-01-01T00:00:00+00:00"}
        run = client.create_run(trained, tags=tags | {"data.last": "2021-06-01T00:00:00+00:00"})
        client.log_metric(run.info.run_id, "overall.calmar", calmar)
        client.create_registered_model(name)
        client.create_model_version(name, source=str(tmp_path), run_id=run.info.run_id)
    table = model_leaderboard(client)
    assert list(table["model"]) == ["bnb", "btc_b", "btc_a"]  # by market, then Calmar
    assert list(table["market"]) == ["BNB/USDT 1d", "BTC/USDT 1d", "BTC/USDT 1d"]
    assert set(table["window"]) == {"2018-01-01..2021-06-01"}

    backtests = client.create_experiment("backtests")
    ids = []
    for pair, purpose in (("BTC/USDT", None), ("ETH/USDT", None), ("BTC/USDT", "replay")):
        tags = {"strategy": "S", "pair": pair, "timeframe": "1h"}
        run = client.create_run(backtests, tags=tags | ({PURPOSE_TAG: purpose} if purpose else {}))
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    table, runs = backtest_leaderboard(client)
    assert list(table["pair"]) == ["BTC/USDT 1h", "BTC/USDT 1h", "ETH/USDT 1h"]
    assert list(table["purpose"]) == ["replay", "", ""]  # newest first within a market
    charted = charted_backtest(runs, None)
    assert charted is not None and charted.info.run_id == ids[1]  # the replay's is skipped
    chosen = charted_backtest(runs, ids[0][:8])
    assert chosen is not None and chosen.info.run_id == ids[0]
    with pytest.raises(ReportError, match="no finished backtests with a run id starting 'zz'"):
        charted_backtest(runs, "zz")


def test_the_comparison_starts_after_the_training_window_when_the_guard_withheld_candles() -> None:
    from datetime import datetime

    from experiments.backtesting.run import compared_window

    start, end = datetime(2021, 1, 1, tzinfo=UTC), datetime(2021, 6, 1, tzinfo=UTC)
    guard = {"train_window_last": "2021-03-01T00:00:00+00:00"}
    first, last = compared_window(start, end, guard, excluded=1416)
    assert first > pd.Timestamp("2021-03-01", tz="UTC") and last == pd.Timestamp(end)
    assert first < pd.Timestamp("2021-03-01 01:00", tz="UTC")
    assert compared_window(start, end, guard, excluded=0)[0] == pd.Timestamp(start)


def test_equity_is_drawn_on_a_log_axis(tmp_path: Path) -> None:
    import matplotlib.image

    from ml.plots import equity_figure

    dates = pd.Series(pd.date_range("2021-01-01", periods=50, freq="D", tz="UTC"))
    curves = {"strategy": np.linspace(1, 1.2, 50), "buy and hold": np.linspace(1, 5, 50)}
    figure = equity_figure(curves, dates, "t")
    axis = figure.axes[0]
    assert axis.get_yscale() == "log"
    path = tmp_path / "e.png"
    figure.savefig(path)
    assert matplotlib.image.imread(path).shape[1] > 0
    # plain labels (issue 24: they read "1.35 x 10^0"), also on an axis under a decade
    assert {"1x", "2x", "3x", "4x"} <= set(_visible_labels(axis)), _visible_labels(axis)
    narrow = equity_figure({"strategy": np.linspace(1, 1.4, 50)}, dates, "t")
    narrow.savefig(tmp_path / "n.png")
    assert {"1x", "1.1x", "1.2x", "1.3x", "1.4x"} <= set(_visible_labels(narrow.axes[0]))


def _visible_labels(axis: Any) -> list[str]:
    low, high = axis.get_ylim()
    ticks = axis.get_yticklabels() + axis.get_yticklabels(minor=True)
    shown = [t.get_text() for t in ticks if t.get_text() and low <= t.get_position()[1] <= high]
    assert all(label.endswith("x") and "10^" not in label for label in shown), shown
    return shown


def test_the_drawdown_chart_draws_buy_and_hold_beside_the_strategy() -> None:
    from ml.plots import drawdown_figure

    dates = pd.Series(pd.date_range("2021-01-01", periods=4, freq="D", tz="UTC"))
    curves = {"strategy": np.array([1.0, 0.9, 1.0, 1.1]), "buy and hold": np.array([1, 2, 1, 1.5])}
    legend = [t.get_text() for t in drawdown_figure(curves, dates, "t").axes[0].get_legend().texts]
    assert legend == ["strategy (max 10%)", "buy and hold (max 50%)"]


def test_empty_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no registered models and no backtests"):
        build_report(UserDir(tmp_path), default_tracking_uri(tmp_path))


@pytest.mark.slow
def test_report_after_training_and_a_backtest(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    userdir = tmp_path / "ud"
    assert cli("demo", "--userdir", userdir, "--shared-data", tmp_path / "none").code == 0
    done = cli("report", "--userdir", userdir, "--out", tmp_path / "r")
    assert done.code == 0, done.err
    page = (tmp_path / "r" / "report.html").read_text()
    assert (
        "<h2>Registered models" in page
        and "demo_btc_1h_hmm_lstm" in page
        and "RegimeStrategy" in page
    )
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3  # equity, drawdown, regimes: embedded, the page is self-contained
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "![equity](equity.png)" in markdown and "| regime |" in markdown
    # the demo's backtests are in the trade journal, and the report shows it
    assert "<h2>Trade journal: bots</h2>" in page and "backtest/RegimeStrategy/" in page
    assert "## Trade journal: closed positions by regime at entry" in markdown

    assert '<th class="num">Calmar</th>' in page and "%</td>" in page
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed: the HTML was checked, not rendered")
    # At 1,400 px every table, picture and paragraph fits: no element reaches past the
    # window and the page does not scroll sideways.
    probe = tmp_path / "r" / "probe.html"
    probe.write_text(
        page.replace(
            "</body>",
            "<script>const w = window.innerWidth; document.title = JSON.stringify({w: w, "
            "scroll: document.documentElement.scrollWidth, wide: [...document.querySelectorAll("
            "'table, th, td, img, figure, p, h1, h2')].filter(e => "
            "e.getBoundingClientRect().right > w + 0.5).map(e => e.tagName)});</script></body>",
        )
    )
    dumped = subprocess.run(
        [*_chromium(tmp_path), "--window-size=1400,2400", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    title = re.search(r"<title>([^<]*)</title>", dumped.stdout)
    assert title is not None, dumped.stderr[-2000:]
    layout = json.loads(html.unescape(title.group(1)))
    # (a page taller than the window has a vertical scrollbar: scrollWidth is then below 1400)
    assert layout["w"] == 1400 and layout["scroll"] <= 1400 and layout["wide"] == []
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            *_chromium(tmp_path),
            "--window-size=1400,2400",
            f"--screenshot={shot}",
            (tmp_path / "r" / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def _chromium(tmp_path: Path) -> list[str]:
    assert CHROMIUM is not None
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ]
