"""`tradingbot demo` (what `make demo` runs) on the real data and on the synthetic fallback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from common.layout import UserDir
from features.data import check_candles, load_candles
from features.feature_spec import default_spec
from ml.tracking import configure, default_tracking_uri
from tests.conftest import SHARED_DATA, CliResult, requires_shared


@pytest.mark.slow
def test_demo_without_shared_data_uses_the_synthetic_market(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    result = cli("demo", "--userdir", tmp_path / "ud", "--shared-data", tmp_path / "no-such-dir")
    assert result.code == 0, result.err
    text = " ".join(result.out.split())
    assert "seeded synthetic regime-switching market" in text
    assert len(load_candles(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")) == 24 * 365
    assert (tmp_path / "ud" / "features" / f"BTC_USDT-1h-{default_spec().hash}.parquet").exists()
    _assert_trained_and_promoted(tmp_path / "ud", text)


def _assert_trained_and_promoted(userdir: Path, text: str) -> None:
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    calmars = {}
    allocations = ("demo_btc_1h_regime_allocation_sized", "demo_btc_1h_regime_allocation")
    for name in (*allocations, "demo_btc_1h_hmm_lstm", "demo_btc_1h_lightgbm"):
        version = client.get_model_version_by_alias(name, "challenger")
        metrics = client.get_run(version.run_id).data.metrics
        # a direction forecaster contends only when its walk-forward beat buy and hold
        if (
            name in allocations
            or metrics["overall.calmar"] > metrics["baseline.always_long.calmar"]
        ):
            calmars[name] = metrics["overall.calmar"]
        else:
            assert name in text.split("not contenders:")[1].splitlines()[0]
    best = max(calmars, key=lambda n: calmars[n])
    champion = client.get_model_version_by_alias(best, "champion")
    assert "best walk-forward Calmar" in champion.tags["promotion_reason"]
    assert f"models:/{best}@champion" in text
    assert "tradingbot ui" in text
    # ...and it ends with an offline Freqtrade backtest of the champion after its training window
    backtests = client.search_runs([client.get_experiment_by_name("backtests").experiment_id])
    assert len(backtests) == 1
    run = backtests[0]
    assert run.data.tags["model"] == f"{best}@champion"
    strategy = "RegimeAllocationStrategy" if best in allocations else "RegimeStrategy"
    assert run.data.tags["strategy"] == strategy
    assert run.data.metrics["guard.excluded_candles"] == 0
    assert "baseline.sma50_daily.calmar" in run.data.metrics and "mtm.calmar" in run.data.metrics
    assert "Sharpe (daily wallet balance)" in text
    _assert_no_absurd_annualised_figure(client)


def _assert_no_absurd_annualised_figure(client: object) -> None:
    """Issue 24: two weeks compounded to CAGR +57,960% and Calmar 5,156. Every metric of
    every run in the store: no |CAGR| above 10,000%, no |Calmar| above 100."""
    from mlflow.tracking import MlflowClient

    assert isinstance(client, MlflowClient)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=5000)
    assert runs
    for run in runs:
        for key, value in run.data.metrics.items():
            name = key.rsplit(".", 1)[-1]
            if name == "cagr":
                assert abs(value) <= 100.0, (run.info.run_name, key, value)
            if name == "calmar":
                assert abs(value) <= 100.0, (run.info.run_name, key, value)


@pytest.mark.slow
@requires_shared
@pytest.mark.shared_data
def test_demo_with_shared_data_imports_the_real_btc(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    result = cli("demo", "--userdir", tmp_path / "ud", "--shared-data", SHARED_DATA)
    assert result.code == 0, result.err
    text = " ".join(result.out.split())
    assert "real Binance BTC/USDT 1h" in text
    assert "repairs" in text
    report = check_candles(
        pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(tmp_path / "ud")
    )
    assert [r.reason for r in report.repairs] == [
        "bad tick: set to the close",
        "bad tick: set to max(open, close)",
    ]
    assert len(load_candles(UserDir(tmp_path / "ud"), "binance", "BTC/USDT", "1h")) == 33_413
    _assert_trained_and_promoted(tmp_path / "ud", text)
