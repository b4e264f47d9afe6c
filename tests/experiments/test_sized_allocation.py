"""The regime allocation sized by forecast risk ([sizing], ml/vol_sizer.py): a fold's
volatility model learns from that fold's past only, its sized exposure is recomputable
from the candles up to its date, and the spec refuses what it cannot mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import SpecError
from common.layout import UserDir
from experiments.spec import ExperimentSpec, load_experiment, parse_experiment
from features.data.synthetic import generate
from ml.fold_training import positions_from
from ml.sizing import DEFAULT_RISK_BUDGET, RiskBudget
from tests.conftest import local_context
from tests.experiments.test_regime_allocation import small_spec, stitched

ROOT = Path(__file__).resolve().parents[2]
SIZING = {
    "target_volatility": 0.5,
    "horizon_days": 2,
    "columns": ["%-realized_volatility_3_1d", "%-log_range_1_1d", "p_bull"],
    "model": {"kind": "lightgbm", "params": {"n_estimators": 30, "min_child_samples": 50}},
}


def sized_spec(sizing: dict[str, object] | None = None) -> ExperimentSpec:
    base = small_spec().model_dump(exclude={"sizing", "tune"})
    (block,) = base["features"]["higher_timeframes"]
    block["features"] = [
        *block["features"],
        {"kind": "realized_volatility", "windows": [3, 7]},
        {"kind": "log_range", "windows": [1]},
    ]
    return parse_experiment(
        {**base, "name": "small_sized", "sizing": sizing or SIZING}, source="test"
    )


def hourly(days: int, seed: int, start: str = "2020-01-01") -> pd.DataFrame:
    candles, _ = generate(24 * days, seed=seed)
    candles["date"] = pd.date_range(start, periods=len(candles), freq="1h", tz="UTC").astype(
        "datetime64[ns, UTC]"
    )
    return candles


def test_the_sized_exposure_is_the_allocation_scaled_by_its_volatility_forecast() -> None:
    spec = sized_spec()
    predictions = stitched(hourly(150, seed=12), spec, "1h")
    known = predictions.dropna(subset=["exposure_unsized", "volatility"])
    assert len(known) > 24 * 20 and (known["volatility"] > 0).all()
    assert "p_up" not in predictions  # an exposure is no probability
    expected = known["exposure_unsized"] * np.minimum(1.0, 0.5 / known["volatility"])
    np.testing.assert_allclose(known["exposure"], expected.clip(0.0, 1.0))
    assert known["volatility"].nunique() > 10  # a forecast that moves, not a constant
    # the simulation holds it by the rebalancing rule: at most one resize a day between
    # the allocation's own decisions
    held = positions_from(predictions, "classification", fractional=True, band=0.1)
    changes = np.flatnonzero(np.diff(held) != 0) + 1
    decisions = predictions["exposure_unsized"].fillna(0).diff().fillna(0).to_numpy() != 0
    resized = predictions["date"].to_numpy()[changes[~decisions[changes]]]
    assert (np.diff(resized) >= np.timedelta64(1, "D")).all()


def test_a_sized_allocation_is_judged_beside_itself_unsized_and_the_sized_rules() -> None:
    from ml.fold_training import score

    spec = sized_spec()
    candles = hourly(150, seed=12)
    predictions = stitched(candles, spec, "1h")
    scores = score(predictions, candles, spec.training, "1h")
    assert {"allocation_unsized", "always_long_sized", "sma50_sized"} <= set(scores.baselines)
    unsized = scores.baselines["allocation_unsized"]
    # without leverage, sizing never holds more than the allocation; here (forecasts
    # above the 0.5 target) it holds less
    assert unsized["exposure"] > scores.metrics["exposure"]


def test_a_sized_decision_is_recomputed_from_the_candles_up_to_its_date() -> None:
    candles = hourly(150, seed=12)
    spec = sized_spec()
    full = stitched(candles, spec, "1h")
    for row in (full.index[30], full.index[-400]):
        part = stitched(candles.iloc[: row + 1].reset_index(drop=True), spec, "1h")
        for column in ("exposure", "exposure_unsized", "volatility"):
            assert part[column].iloc[-1] == full.loc[row, column], (row, column)


def test_the_trailing_forecast_reads_a_week_of_daily_closes() -> None:
    spec = sized_spec(
        {"forecast": "trailing", "columns": ["%-realized_volatility_7_1d"], "horizon_days": 7}
    )
    predictions = stitched(hourly(150, seed=12), spec, "1h")
    known = predictions.dropna(subset=["volatility"])
    assert len(known) and (known["volatility"] > 0).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"kind": "lightgbm"}}, "sizes a regime allocation"),
        ({"sizing": {**SIZING, "model": None}}, 'forecast = "model" needs'),
        ({"sizing": {"forecast": "trailing", "columns": ["%-log_range_1_1d"]}}, "1d candles"),
        ({"sizing": {**SIZING, "cap": 2.0}}, "cap"),
    ],
)
def test_a_sizing_block_that_cannot_mean_anything_is_refused(
    change: dict[str, object], message: str
) -> None:
    base = sized_spec().model_dump(exclude={"tune"})
    with pytest.raises(SpecError, match=message):
        parse_experiment({**base, **change}, source="test")


def test_a_sizing_column_the_features_lack_is_named() -> None:
    spec = sized_spec({**SIZING, "columns": ["%-nope"]})
    with pytest.raises(ValueError, match="nope"):
        stitched(hourly(150, seed=12), spec, "1h")


def test_the_shipped_sized_spec_parses_and_sizes_the_shipped_allocation() -> None:
    sized = load_experiment(ROOT / "experiments/specs/btc_1h_regime_allocation_sized.toml")
    plain = load_experiment(ROOT / "experiments/specs/btc_1h_regime_allocation.toml")
    assert sized.sizing is not None and sized.sizing.target_volatility == 0.6
    assert (sized.regime, sized.model, sized.walk_forward) == (
        plain.regime,
        plain.model,
        plain.walk_forward,
    )


@pytest.mark.slow
def test_a_backtest_sizes_the_rules_beside_it_to_its_own_budget(tmp_path: Path) -> None:
    """A sized strategy is judged against rules sized to its target, not the default."""
    from experiments.backtesting.run import backtest
    from experiments.training import train
    from features.data import import_candles, load_candles
    from ml.registry import promote
    from ml.tracking import configure, default_tracking_uri
    from strategies.equity import comparison

    # the strategy reads 170 days before its first candle (its slow-clock features)
    candles = hourly(250, seed=12, start="2019-10-01")
    candles.to_feather(tmp_path / "c.feather")
    userdir = tmp_path / "ud"
    import_candles(
        tmp_path / "c.feather",
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        layout=UserDir(userdir),
    )
    uri = default_tracking_uri(userdir)
    trained = train(sized_spec(), context=local_context(userdir, uri))
    client = configure(uri, UserDir(userdir))
    promote(client, "small_sized", trained.version, "test", user="pytest", force=True)
    summary = backtest(
        strategy=None,
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        timerange="",
        model="small_sized@champion",
        context=local_context(userdir, uri),
        walk_forward=True,
    )
    window = (summary.metrics.start, summary.metrics.end + pd.Timedelta(hours=1))
    stored = load_candles(UserDir(userdir), "binance", "BTC/USDT", "1h")

    def rules(budget: RiskBudget) -> dict[str, dict[str, float]]:
        return comparison(
            [], stored, "1h", window, starting_balance=1000.0, fee=0.001, risk_budget=budget
        )

    own, default = rules(RiskBudget(0.5, 0.1)), rules(DEFAULT_RISK_BUDGET)
    assert own["sma50_sized"] != default["sma50_sized"]  # the budgets differ: so do the rules
    assert summary.comparison["sma50_sized"]["total_return"] == pytest.approx(
        own["sma50_sized"]["total_return"]
    )
