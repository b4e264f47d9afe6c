"""`tradingbot scorecard`: one spec on several imported markets, on the real engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from common.layout import UserDir
from features.data import import_candles
from features.data.synthetic import generate
from ml.tracking import default_tracking_uri
from tests.conftest import CliResult

KINDS = ("ewm_return", "ewm_log_downside_deviation", "ewm_sortino", "trend_distance")
COLUMNS = ", ".join(f'"%-{k}_{d}d_1d"' for k in KINDS for d in (1, 2))
SPEC = f"""
name = "small_allocation"
[data]
pair = "AAA/USDT"
timeframe = "1h"
[features]
features = [{{ kind = "log_return", windows = [1] }}]
[[features.higher_timeframes]]
timeframe = "1d"
features = [
{"".join(f'    {{ kind = "{k}", halflives_days = [1, 2] }},{chr(10)}' for k in KINDS)}    {{ kind = "close_zscore", windows = [10] }},
]
[regime]
kind = "jump"
columns = [{COLUMNS}]
jump_penalties = [3.0, 30.0]
n_init = 3
[model]
kind = "regime_allocation"
params = {{ trend_column = "%-close_zscore_10_1d" }}
[target]
horizon = 24
[walk_forward]
start = "20200701"
folds = 6
test_days = 30
[backtest]
strategy = "RegimeAllocationStrategy"
"""


@pytest.mark.slow
def test_scorecard_runs_the_spec_on_each_market_and_records_one_table(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    userdir = tmp_path / "ud"
    for seed, pair in ((31, "AAA/USDT"), (32, "BBB/USDT")):
        candles, _ = generate(24 * 300, seed=seed)
        candles["date"] = pd.date_range(
            "2020-01-01", periods=len(candles), freq="1h", tz="UTC"
        ).astype("datetime64[ns, UTC]")
        source = tmp_path / f"{seed}.feather"
        candles.to_feather(source)
        import_candles(
            source, pair=pair, timeframe="1h", exchange="binance", layout=UserDir(userdir)
        )
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)

    missing = cli(
        "scorecard", path, "--pair", "AAA/USDT", "--pair", "ZZZ/USDT", "--userdir", userdir
    )
    assert missing.code == 2 and "ZZZ" in missing.err
    assert not (userdir / "mlflow.db").exists()  # checked before anything ran

    result = cli(
        "scorecard", path, "--pair", "AAA/USDT", "--pair", "BBB/USDT", "--userdir", userdir
    )
    assert result.code == 0, result.err
    assert "AAA/USDT 1h" in result.out and "BBB/USDT 1h" in result.out
    assert "beats rules" in result.out
    client = MlflowClient(default_tracking_uri(userdir))
    experiment = client.get_experiment_by_name("scorecards")
    (run,) = client.search_runs([experiment.experiment_id])
    for key in ("AAA_USDT_1h", "BBB_USDT_1h"):
        for row in ("strategy", "always_long", "sma50_daily", "momentum_30d"):
            assert f"{key}.{row}.calmar" in run.data.metrics
        assert run.data.tags[f"model.{key}"].startswith(f"small_allocation__{key}/")
    versions = client.search_model_versions("name = 'small_allocation__AAA_USDT_1h'")
    assert len(versions) == 1
    # registered to be served by the backtest, not to crowd the report's model table
    from experiments.reporting.report import model_leaderboard

    assert client.get_registered_model(versions[0].name).tags["tradingbot.purpose"] == "scorecard"
    assert model_leaderboard(client).empty


@pytest.mark.parametrize(
    ("strategy", "rule", "expected"),
    [(2.48, 2.42, "tie"), (2.8, 2.42, "yes"), (2.0, 2.42, "no"), (1.0, -0.5, "yes")],
)
def test_beating_the_rules_needs_a_margin(strategy: float, rule: float, expected: str) -> None:
    """Before: 2.48 against 2.42 read "beats rules: yes"."""
    from experiments.backtesting.scorecard import verdict

    assert verdict(strategy, rule).split()[0] == expected
