"""Training a volatility forecaster (issue 25 item 1): `[target] kind = "volatility"`
walk-forward, judged by QLIKE beside the trailing window, EWMA and HAR-RV."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from common.layout import UserDir
from ml.tracking import configure, default_tracking_uri
from tests.conftest import CliResult, import_synthetic

SPEC = """
name = "{name}"
seed = 5

[data]
pair = "BTC/USDT"
timeframe = "1h"

[regime]
n_states = 2
n_restarts = 1
n_iter = 20

[model]
{model}

[target]
kind = "{kind}"
horizon = 24

[walk_forward]
folds = 2
test_size = 1500
"""


@pytest.fixture(scope="module")
def userdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("risk") / "ud"
    import_synthetic(root, "BTC/USDT", candles=24 * 250, seed=17)
    return root


LIGHTGBM = (
    'kind = "lightgbm"\nparams = { n_estimators = 60, num_leaves = 7, min_child_samples = 50 }'
)
# HAR-RV on the default features' realised volatilities and ranges, boosted on its residuals
HAR = 'kind = "har"\nparams = { boost_rounds = 30, min_child_samples = 50 }'


@pytest.mark.parametrize(
    ("kind", "model"),
    [("volatility", LIGHTGBM), ("downside_volatility", LIGHTGBM), ("volatility", HAR)],
)
def test_a_volatility_forecaster_is_judged_against_the_classical_forecasts(
    userdir: Path, tmp_path: Path, cli: Callable[..., CliResult], kind: str, model: str
) -> None:
    spec = tmp_path / "risk.toml"
    name = f"risk_{kind}_{model.split()[2].strip(chr(34))}"
    spec.write_text(SPEC.format(name=name, kind=kind, model=model))
    result = cli("train", spec, "--userdir", userdir)
    assert result.code == 0, result.err
    said = " ".join(result.out.split())
    assert "forecast losses of the log volatility" in said
    assert all(row in said for row in ("model", "trailing", "ewma", "har_rv", "vs HAR-RV"))

    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    version = client.get_model_version_by_alias(name, "challenger")
    metrics = client.get_run(version.run_id).data.metrics
    for key in ("overall.qlike", "overall.mse_log_vol", "overall.qlike_vs_har_rv"):
        assert np.isfinite(metrics[key]), key
    for baseline in ("trailing", "ewma", "har_rv"):
        assert np.isfinite(metrics[f"baseline.{baseline}.qlike"]), baseline
    assert metrics["baseline.har_rv.qlike_vs_har_rv"] == pytest.approx(1.0)
    ratio = metrics["overall.qlike"] / metrics["baseline.har_rv.qlike"]
    assert metrics["overall.qlike_vs_har_rv"] == pytest.approx(ratio)
    # a forecast of risk is not traded on its sign: no return, no Calmar, no accuracy
    assert not {"overall.total_return", "overall.calmar", "overall.accuracy"} & set(metrics)
    # the promotion gate asks it to forecast at least as well as HAR-RV
    from ml.evaluation import promotion_gate

    gate = promotion_gate(metrics)
    assert ("not above HAR-RV's" in gate.reason) == gate.passed
    # the served prediction is the forecast log volatility of the next 24 hours
    from ml.model_source import load_bundle

    bundle = load_bundle(f"models:/{name}/{version.version}")
    from features.data import load_candles

    candles = load_candles(UserDir(userdir), "binance", "BTC/USDT", "1h")
    tail = candles.iloc[-500:].reset_index(drop=True)
    forecast = bundle.predict(tail)["prediction"]
    # the forecaster's median log volatility, plus the held-out log-normal correction
    correction = bundle.metadata.risk_correction
    assert 0.0 < correction < 1.0
    features = bundle.features(tail)
    median = bundle.forecaster.predict(bundle.inputs(features, bundle.regimes(features)))
    np.testing.assert_allclose(forecast.to_numpy()[-100:], median[-100:] + correction)
    annual = np.exp(forecast.dropna().to_numpy())
    assert ((annual > 0.05) & (annual < 5.0)).all()  # 5% .. 500% a year: a volatility
