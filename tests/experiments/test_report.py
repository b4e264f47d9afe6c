"""`tradingbot report`: Markdown and a self-contained HTML page, rendered in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from experiments.report import ReportError, build_report
from ml.tracking import default_tracking_uri
from tests.conftest import CliResult

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_empty_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no registered models and no backtests"):
        build_report(tmp_path, default_tracking_uri(tmp_path))


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

    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed: the HTML was checked, not rendered")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
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
            "--window-size=1300,2400",
            f"--screenshot={shot}",
            (tmp_path / "r" / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
