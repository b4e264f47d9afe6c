"""`tradingbot regimes` and `tradingbot ui`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil
import pytest

from common.layout import UserDir
from features.data import import_candles
from features.data.synthetic import generate
from tests.conftest import CliResult


@pytest.fixture(scope="module")
def userdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regimes")
    candles, _ = generate(4000, seed=9)
    candles.to_feather(root / "c.feather")
    import_candles(
        root / "c.feather",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        layout=UserDir(root / "ud"),
    )
    return root / "ud"


def test_regimes_writes_causal_csv_and_plot(
    cli: Callable[..., CliResult], userdir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "regimes.csv"
    result = cli(
        "regimes",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--userdir",
        userdir,
        "--train-end",
        "2020-04-15",
        "--out",
        out,
    )
    assert result.code == 0, result.err
    table = pd.read_csv(out)
    assert list(table.columns[:2]) == ["date", "regime"]
    probability_columns = [c for c in table.columns if c.startswith("p_")]
    assert sorted(probability_columns) == ["p_bear", "p_bull", "p_sideways"]
    assert len(table) == 4000
    complete = table.dropna()
    assert len(complete) == 4000 - 167  # warm-up of the 168-candle volume z-score
    assert (complete[probability_columns].sum(axis=1) - 1).abs().max() < 1e-9
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = " ".join(result.out.split())
    assert "switches per 1,000 candles" in text and "2020-04-15" in text
    assert "4/4" in result.err  # a bar with stages, not a bare spinner

    # Causal: refitting is deterministic and regimes up to a date do not change when
    # later candles are appended (the CSV on a shorter file equals the prefix).
    short = tmp_path / "short"
    cut = pd.read_feather(userdir / "data" / "binance" / "BTC_USDT-1h.feather").iloc[:3000]
    cut.to_feather(tmp_path / "cut.feather")
    import_candles(
        tmp_path / "cut.feather",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        layout=UserDir(short),
    )
    again = cli(
        "regimes",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--userdir",
        short,
        "--train-end",
        "2020-04-15",
        "--out",
        tmp_path / "short.csv",
    )
    assert again.code == 0, again.err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "short.csv"), table.iloc[:3000])


def test_regimes_errors(cli: Callable[..., CliResult], userdir: Path, tmp_path: Path) -> None:
    early = cli(
        "regimes",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--userdir",
        userdir,
        "--train-end",
        "2020-01-02",
        "--out",
        tmp_path / "x.csv",
    )
    assert early.code == 2 and "move --train-end later" in early.err
    bad = cli(
        "regimes",
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--userdir",
        userdir,
        "--states",
        "many",
        "--out",
        tmp_path / "x.csv",
    )
    assert bad.code == 2
    assert not (tmp_path / "x.csv").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop_signal",
    [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
    ids=["ctrl-c", "sigterm", "sigkill"],
)
def test_ui_serves_the_store_and_stops_cleanly(userdir: Path, stop_signal: signal.Signals) -> None:
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradingbot",
            "ui",
            "--userdir",
            str(userdir),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # a shell's background job starts with SIGINT ignored: the child must see Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    children: list[psutil.Process] = []
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health", timeout=2
                ) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    raise AssertionError(
                        f"the UI did not come up: {process.stdout.read() if process.stdout else ''}"
                    ) from None
                time.sleep(0.5)
        children = psutil.Process(process.pid).children(recursive=True)
        assert children, "the server runs as a child process"
        if stop_signal == signal.SIGKILL:  # no clean-up runs: the watchdog must end the server
            children += [
                p
                for p in psutil.process_iter(["cmdline"])
                if "mlflow" in " ".join(p.info["cmdline"] or [])
                and str(port) in " ".join(p.info["cmdline"] or [])
            ]
        assert (userdir / "mlflow.db").exists()
        process.send_signal(stop_signal)
        process.wait(timeout=30)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"orphan processes left: {alive}"
        if stop_signal != signal.SIGKILL:
            assert "MLflow UI stopped" in (process.stdout.read() if process.stdout else "")
    finally:
        for group in {process.pid, *(c.pid for c in children)}:  # pass or fail: nothing left
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        if process.poll() is None:
            process.kill()


def _request(port: int, method: str, path: str, body: dict[str, object] | None = None) -> int:
    import json
    import urllib.error

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:  # not listening yet
        return 0


@pytest.mark.slow
def test_the_ui_reads_and_refuses_every_write(userdir: Path, tmp_path: Path) -> None:
    """Before: any local process could move @champion through the UI's server (200),
    skipping promote's checks, and uploads landed in the working directory."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tradingbot", "ui", "--userdir", str(userdir),
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while _request(port, "GET", "/health") != 200:
            if time.time() > deadline or process.poll() is not None:
                raise AssertionError(process.stdout.read() if process.stdout else "no output")
            time.sleep(0.5)
        api = "/api/2.0/mlflow"
        assert _request(port, "GET", "/") == 200  # the UI's page
        assert _request(port, "GET", f"{api}/experiments/search?max_results=10") == 200
        assert _request(port, "POST", f"{api}/runs/search", {"experiment_ids": ["0"]}) == 200
        assert _request(port, "POST", f"{api}/registered-models/create", {"name": "x"}) == 403
        alias = {"name": "x", "alias": "champion", "version": "1"}
        assert _request(port, "POST", f"{api}/registered-models/alias", alias) == 403
        assert _request(port, "DELETE", f"{api}/registered-models/alias", alias) == 403
        assert _request(port, "PUT", "/api/2.0/mlflow-artifacts/artifacts/evil.txt", {}) == 403
        mutation = {"query": "mutation { x }"}
        assert _request(port, "POST", "/graphql", mutation) == 403
        assert not any(tmp_path.iterdir())  # nothing landed in the working directory
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_ui_on_a_busy_port_is_an_error(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """Before: the server failed to bind and the command exited 0."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("ui", "--port", str(port), "--userdir", tmp_path / "ud")
    assert done.code == 2 and f"port {port} on 127.0.0.1 is in use" in done.err
