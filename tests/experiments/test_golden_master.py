"""Golden masters of the training pipeline on the real markets (issue 26).

Each case trains a spec through the public entry points (single pair, pooled whitelist,
and the regime allocation's scorecard on BTC 1h, which trains and then backtests the fold
models walk-forward on the Freqtrade engine) and compares every figure with the one
recorded in ``tests/golden/`` before a refactor of the pipeline. On the machine and
package versions that recorded them the figures must agree to the last digit; elsewhere
floating-point reductions may round differently (BLAS and LightGBM pick code paths by
CPU), so they must agree to 1e-9 relative, and the test says which it checked.

Record again (only when a change is *meant* to move the figures, and say why in the
commit): ``TRADINGBOT_RECORD_GOLDEN=1 pytest tests/experiments/test_golden_master.py``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from common.layout import UserDir
from experiments.backtesting.scorecard import scorecard
from experiments.spec import ExperimentSpec, load_experiment, parse_experiment
from features.data import import_candles
from ml.tracking import default_tracking_uri
from tests.conftest import BTC_1D, BTC_1H, SHARED_DATA, local_context

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SPECS = Path(__file__).resolve().parents[2] / "experiments" / "specs"
BNB_1D = SHARED_DATA / "binance-csv" / "Binance_BNBUSDT_d.csv.gz"
RECORD = os.environ.get("TRADINGBOT_RECORD_GOLDEN") == "1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared_data,
    pytest.mark.skipif(
        not (BTC_1H.exists() and BTC_1D.exists() and BNB_1D.exists()),
        reason=f"real market data not found at {SHARED_DATA} (set TRADINGBOT_SHARED_DATA)",
    ),
]

DAILY_LIGHTGBM = """
name = "golden_{name}"
seed = 7

[data]
{data}
timeframe = "1d"
exchange = "binance"
timerange = "20180101-20210601"

[features]
preset = "default"

[regime]
n_states = 2
n_restarts = 2
n_iter = 50

[model]
kind = "lightgbm"
params = {{ n_estimators = 60, num_leaves = 7, min_child_samples = 20 }}

[walk_forward]
scheme = "expanding"
folds = 4
"""


def _spec(name: str, data: str) -> ExperimentSpec:
    text = DAILY_LIGHTGBM.format(name=name, data=data)
    return parse_experiment(tomllib.loads(text), source=f"golden spec {name}")


def _machine() -> dict[str, str]:
    """What decides the last digits: the CPU and the numeric packages."""
    packages = ("numpy", "scipy", "scikit-learn", "lightgbm", "hmmlearn", "pandas", "torch")
    return {
        "machine": platform.machine(),
        "processor": _cpu_model(),
        **{name: version(name) for name in packages},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _check(case: str, figures: dict[str, Any]) -> None:
    path = GOLDEN / f"{case}.json"
    if RECORD:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps({"machine": _machine(), "figures": figures}, indent=1) + "\n")
        return
    recorded = json.loads(path.read_text())
    measured, expected_figures = _flat(figures), _flat(recorded["figures"])
    assert measured.keys() == expected_figures.keys()
    exact = recorded["machine"] == _machine()
    for key, expected in expected_figures.items():
        got = measured[key]
        if isinstance(expected, float) and isinstance(got, float):
            if math.isnan(expected):
                assert math.isnan(got), key
            elif exact:
                assert got == expected, f"{key}: {got!r} != recorded {expected!r}"
            else:
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), key
        else:
            assert got == expected, key
    print(f"{case}: {'to the last digit' if exact else 'to 1e-9 (another machine)'}")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out |= _flat(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): float(tree) if isinstance(tree, int | float) else tree}


@pytest.fixture(scope="module")
def userdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("golden") / "ud"
    for source, pair, timeframe in (
        (BTC_1H, "BTC/USDT", "1h"),
        (BTC_1D, "BTC/USDT", "1d"),
        (BNB_1D, "BNB/USDT", "1d"),
    ):
        import_candles(
            source, pair=pair, timeframe=timeframe, exchange="binance", layout=UserDir(folder)
        )
    return folder


def test_single_pair_walk_forward(userdir: Path) -> None:
    from experiments.training import train

    spec = _spec("single", 'pair = "BTC/USDT"')
    result = train(spec, context=local_context(userdir, default_tracking_uri(userdir)))
    _check("single_lightgbm_btc_1d", {"model": result.metrics, **result.baselines})


def test_pooled_walk_forward(userdir: Path) -> None:
    from experiments.training import train

    data = 'pairs = ["BTC/USDT", "BNB/USDT"]\npooling = "pooled"'
    spec = _spec("pooled", data)
    result = train(spec, context=local_context(userdir, default_tracking_uri(userdir)))
    per_pair = {pair: {"model": s.metrics, **s.baselines} for pair, s in result.per_pair.items()}
    _check(
        "pooled_lightgbm_btc_bnb_1d",
        {"model": result.metrics, **result.baselines, "per_pair": per_pair},
    )


def test_regime_allocation_scorecard_btc_1h(userdir: Path) -> None:
    spec = load_experiment(SPECS / "btc_1h_regime_allocation_sized.toml")
    card = scorecard(
        spec, ["BTC/USDT"], context=local_context(userdir, default_tracking_uri(userdir))
    )
    (market,) = card.markets
    _check(
        "regime_allocation_sized_scorecard_btc_1h",
        {"window": market.window, "engine": market.rows, "walk_forward": market.walk_forward},
    )
