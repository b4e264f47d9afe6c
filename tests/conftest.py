"""Shared fixtures. Tests that need the real market data skip, with the reason, without it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from common.context import RunContext, default_tracking_uri
from common.layout import UserDir
from features.data.synthetic import generate
from ml import regime_memo
from tradingbot import run

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRADINGBOT_SHARED_DATA", ROOT.parent / "shared" / "data"))
BTC_1H = SHARED_DATA / "binance-csv" / "Binance_BTCUSDT_1h.csv.gz"
BTC_1D = SHARED_DATA / "binance-csv" / "Binance_BTCUSDT_d.csv.gz"
FREQTRADE_TESTDATA = SHARED_DATA / "freqtrade-testdata"

requires_shared = pytest.mark.skipif(
    not BTC_1H.exists(),
    reason=f"real market data not found at {SHARED_DATA} (set TRADINGBOT_SHARED_DATA); "
    "CI and developer machines have it, a fresh user clone does not",
)


@pytest.fixture(autouse=True)
def no_leaked_tracking_uri() -> Iterator[None]:
    """No code of ours may leave MLflow URIs in the environment (they would redirect later runs)."""
    yield
    leaked = [k for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI") if k in os.environ]
    assert not leaked, f"{leaked} left in os.environ"


@pytest.fixture(autouse=True)
def fresh_regime_memo() -> None:
    """Each test fits and reads out its own regime models (no memo hits from earlier tests)."""
    regime_memo.clear()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `tradingbot ARGS...` in-process and capture its exit code and output."""

    def invoke(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def synthetic_candles() -> pd.DataFrame:
    candles, _ = generate(3000, seed=11)
    return candles


@pytest.fixture(scope="session")
def btc_userdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user dir with the real BTC/USDT 1h candles imported (as is, no repair)."""
    if not BTC_1H.exists():
        pytest.skip(f"real market data not found at {SHARED_DATA}")
    from features.data import import_candles

    userdir = tmp_path_factory.mktemp("btc")
    import_candles(
        BTC_1H, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(userdir)
    )
    return userdir


@pytest.fixture(scope="session")
def btc_candles(btc_userdir: Path) -> pd.DataFrame:
    from features.data import load_candles

    return load_candles(UserDir(btc_userdir), "binance", "BTC/USDT", "1h")


def local_context(userdir: Path, tracking_uri: str | None = None) -> RunContext:
    """A test's run context: the user dir, its own store unless ``tracking_uri`` names
    another, and the test process's environment (as a command started in it would get)."""
    return RunContext(userdir, tracking_uri or default_tracking_uri(userdir), os.environ)


def import_synthetic(
    userdir: Path,
    pair: str,
    *,
    candles: int,
    seed: int,
    start: str = "2021-01-01",
    change: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """Import ``candles`` hourly synthetic candles from ``start`` as ``pair`` into ``userdir``
    (through the real importer); ``change`` may edit the frame first. Returns the frame."""
    from features.data import import_candles

    frame, _ = generate(candles, seed=seed)
    frame["date"] = pd.date_range(start, periods=candles, freq="1h", tz="UTC").astype(
        "datetime64[ns, UTC]"
    )
    if change is not None:
        change(frame)
    userdir.mkdir(parents=True, exist_ok=True)
    source = userdir.parent / f"{pair.replace('/', '_')}-{seed}.feather"
    frame.to_feather(source)
    import_candles(source, pair=pair, timeframe="1h", exchange="binance", layout=UserDir(userdir))
    return frame


def run_in_own_group(
    command: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in its own process group (stdout and stderr together) and kill the
    whole group in ``finally``, pass, fail or timeout."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,  # nothing a test runs reads the terminal
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return subprocess.CompletedProcess(command, process.returncode, output)


def run_python(
    code: str, *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -c code`` in a fresh interpreter, from the repository's root and with it
    importable, in its own process group (see :func:`run_in_own_group`). ``env``: the
    environment to start from (default: this process's)."""
    environment = {**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)}
    return run_in_own_group(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, timeout=timeout
    )


def run_together(
    commands: list[list[str]], *, env: dict[str, str] | None = None, timeout: float = 300
) -> list[subprocess.CompletedProcess[str]]:
    """Start ``commands`` at once, each in its own process group (stdout and stderr
    apart), wait for all, and kill every group still there in ``finally``."""
    processes = [
        subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for command in commands
    ]
    try:
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return [
        subprocess.CompletedProcess(command, process.returncode, out, err)
        for command, process, (out, err) in zip(commands, processes, outputs, strict=True)
    ]


def fit_on_prefix(spec: Any, candles: pd.DataFrame, rows: int) -> tuple[Any, pd.DataFrame]:
    """A bundle of ``spec`` fitted on the first ``rows`` candles (BTC/USDT 1h), and the
    feature frame of all candles: the real fit, without the MLflow record of training."""
    from features.candles import data_window
    from features.pipeline import build
    from ml.bundle import fit_bundle

    features = build(candles, spec.feature_spec)
    bundle = fit_bundle(
        name=spec.name,
        candles=candles,
        features=features,
        rows=slice(0, rows),
        feature_spec=spec.feature_spec,
        config=spec.training,
        train_window=data_window(candles.iloc[:rows], "BTC/USDT", "1h"),
        data_sha256="0" * 64,
        seed=spec.seed,
        pair="BTC/USDT",
        timeframe="1h",
    )
    return bundle, features


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real PostgreSQL server (pgserver's bundled binaries) for one test module, stopped
    and deleted after it: a server shared by the whole session was once found stopped
    by the time a later module used it."""
    pgserver = pytest.importorskip(
        "pgserver",
        reason="pgserver (a dev dependency on Linux x86_64 / macOS arm64, Python < 3.13) "
        "bundles the PostgreSQL server this test runs",
    )
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
