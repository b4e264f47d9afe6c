"""Strategy blocks and compositions: causal blocks, checked compositions, and one signal code
that the tuning replay and the real Freqtrade engine trade alike (on a generated market,
so it runs on a fresh clone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common.errors import SpecError
from common.layout import UserDir
from experiments.backtesting.run import backtest
from experiments.spec import parse_experiment
from experiments.training import train
from features.data import load_candles
from features.data.synthetic import generate
from ml.registry import promote
from ml.tracking import configure, default_tracking_uri
from strategies.blocks import BLOCKS, Param
from strategies.catalogue import introspect
from strategies.composition import Composition, compositions_in, load_composition
from strategies.params import StrategyParams, default_params
from strategies.replay import replay
from strategies.results import parse_result_zip
from strategies.runner import REPO_STRATEGIES
from tests.conftest import import_synthetic, local_context

SHIPPED = compositions_in(REPO_STRATEGIES)
ALL_SIGNALS = [name for name, block in BLOCKS.items() if block.role != "position"]


def _analysed(rows: int = 600, seed: int = 4) -> pd.DataFrame:
    """Generated candles with model columns as the adapter adds them (values made from the
    candles, so they vary; the blocks only read them)."""
    frame, _ = generate(rows, seed=seed)
    change = frame["close"].pct_change(3).fillna(0.0)
    frame["&-p_up"] = (0.5 + change.clip(-0.2, 0.2)).to_numpy()
    frame["&-prediction"] = (frame["&-p_up"] > 0.5).astype(float)
    recent = frame["&-p_up"].rolling(48, min_periods=48)  # the adapter's recent range
    frame["&-p_up_mean"] = recent.mean().fillna(0.5).to_numpy()
    frame["&-p_up_std"] = recent.std(ddof=0).fillna(0.05).to_numpy()
    frame["&-regime"] = np.select(
        [change > 0.01, change < -0.01], ["bull", "bear"], default="sideways"
    )
    frame["do_predict"] = (np.arange(rows) >= 50).astype("int64")
    return frame


@pytest.mark.parametrize("name", ALL_SIGNALS)
def test_every_signal_block_is_causal(name: str) -> None:
    """A block's answer at candle t is the same computed on candles <= t as on all."""
    frame = _analysed()
    block = BLOCKS[name]
    values = {p.name: p.default for p in block.params}
    full = block(frame, values)
    for end in (120, 333, 599):
        prefix = block(frame.iloc[:end].copy(), values)
        np.testing.assert_array_equal(prefix.fires, full.fires[:end])
        np.testing.assert_allclose(prefix.confidence, full.confidence[:end])


def test_shipped_compositions_are_causal_and_fire() -> None:
    frame = _analysed(1500)
    for composition in SHIPPED.values():
        full = composition.signals(frame, composition.defaults())
        prefix = composition.signals(frame.iloc[:900].copy(), composition.defaults())
        np.testing.assert_array_equal(prefix.enter, full.enter[:900])
        np.testing.assert_array_equal(prefix.exit, full.exit[:900])
        assert full.enter.any() and full.exit.any(), composition.name
        assert not full.enter_tag.str.contains(r"\d").any()  # tags hold no numbers


def test_parameters_are_declared_once_for_freqtrade_and_tuning() -> None:
    info = {i.name: i for i in introspect(REPO_STRATEGIES)}["TrendPullbackStrategy"]
    composition = SHIPPED["TrendPullbackStrategy"]
    declared = {p.name: p for p in composition.params()}
    assert {p.name for p in info.parameters} == set(declared)
    assert declared["sma_window"].default == 100  # the composition's default, an integer
    ft = declared["sma_window"].freqtrade()
    assert type(ft).__name__ == "IntParameter" and ft.value == 100 and ft.space == "buy"
    params = default_params(info)
    assert params.value("atr_multiple") == 2.5 and params.value("max_candles") == 48


@pytest.mark.parametrize(
    ("strategy", "error"),
    [
        ({"entry": ["no_such_block"]}, "unknown block 'no_such_block'"),
        ({"entry": ["model_turn"]}, "'model_turn' is an exit block"),
        ({"entry": ["trend_filter"], "parameters": {"rsi_below": 30}}, "no parameter of"),
        ({"entry": ["trend_filter"], "parameters": {"sma_window": 5000}}, "outside"),
        ({"entry": ["trend_filter"], "parameters": {"sma_window": 20.5}}, "whole number"),
        ({"entry": ["trend_filter", "trend_filter"]}, "listed twice"),
    ],
)
def test_a_bad_composition_is_refused_with_the_reason(
    tmp_path: Path, strategy: dict[str, Any], error: str
) -> None:
    lines = ['name = "Mine"'] + [f"{key} = {_toml(value)}" for key, value in strategy.items()]
    path = tmp_path / "Mine.toml"
    path.write_text("[strategy]\n" + "\n".join(lines) + "\n")
    with pytest.raises(SpecError, match=error) as raised:
        load_composition(path)
    assert str(path) in str(raised.value)


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {v}" for k, v in value.items()) + " }"
    return "[" + ", ".join(f'"{v}"' for v in value) + "]"


def test_a_composition_must_be_named_as_its_file(tmp_path: Path) -> None:
    path = tmp_path / "Other.toml"
    path.write_text('[strategy]\nname = "Mine"\nentry = ["trend_filter"]\n')
    with pytest.raises(SpecError, match="must match the file name"):
        load_composition(path)


def test_a_new_block_is_one_declared_function() -> None:
    from strategies import blocks

    @blocks.signal_block("entry", Param("close_above", 1.0, 0.0, 1e9, "buy"))
    def close_above_level(frame: pd.DataFrame, values: Any) -> blocks.Signal:
        """Close above a fixed level."""
        return blocks.Signal.of(frame["close"] > float(values["close_above"]), "close_above")

    try:
        composition = Composition(
            name="Level", entry=["close_above_level"], parameters={"close_above": 100.0}
        )
        frame = pd.DataFrame({"close": [99.0, 101.0]})
        assert composition.signals(frame, composition.defaults()).enter.tolist() == [False, True]
    finally:
        del BLOCKS["close_above_level"]


def test_a_new_position_block_is_one_rule_and_one_declaration() -> None:
    """Neither engine names a position block: both loop over the composition's rules."""
    from strategies import blocks
    from strategies.position_rules import Held, PositionRule

    class LeaveAfterTwo(PositionRule):
        def exit_now(self, held: Held, values: Any) -> str | None:
            return "leave_after_two" if held.candles_held >= 2 else None

    blocks.position_block(
        "leave_after_two", "Leave two candles after the entry.", rule=LeaveAfterTwo()
    )
    try:
        composition = Composition(
            name="Quick", entry=["trend_filter"], exit=["leave_after_two"], parameters={}
        )
        candles, _ = generate(400, seed=3)
        candles["date"] = pd.date_range("2021-01-01", periods=400, freq="1h", tz="UTC")
        params = StrategyParams(
            strategy="Quick",
            spaces={"buy": composition.defaults()},
            stoploss=-0.99,
            minimal_roi={"0": 100.0},
            composition=composition,
        )
        result = replay(
            candles, pd.DataFrame(index=candles.index[100:]), params, fee=0.001, timeframe="1h"
        )
        closed = result.trades[result.trades["exit_reason"] != "end_of_data"]
        assert len(closed) and (closed["exit_reason"] == "leave_after_two").all()
        assert ((closed["exit_index"] - closed["entry_index"]) == 2).all()
    finally:
        del BLOCKS["leave_after_two"]


# -- the replay and the real engine ----------------------------------------------------------


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    userdir = tmp_path_factory.mktemp("compositions") / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=2600, seed=11)
    uri = default_tracking_uri(userdir)
    for name, kind, params in (
        ("cmp_lgbm", "lightgbm", {"n_estimators": 30, "num_leaves": 7}),
        ("cmp_rules", "rules", {}),
    ):
        spec = parse_experiment(
            {
                "name": name,
                "seed": 3,
                "regime": {"n_restarts": 1, "n_iter": 20},
                "model": {"kind": kind, "params": params},
                "walk_forward": {"folds": 2, "test_size": 700},
            },
            source="test",
        )
        result = train(spec, context=local_context(userdir, uri))
        promote(
            configure(uri, UserDir(userdir)),
            name,
            result.version,
            "composition test",
            user="pytest",
            force=True,
        )
    return {"userdir": userdir, "uri": uri}


MODELS = {"RegimeStrategy": "cmp_lgbm", "RegimeRulesStrategy": "cmp_rules"}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", sorted(SHIPPED))
def test_replay_and_the_real_engine_agree_on_the_trades(
    market: dict[str, Any], strategy: str
) -> None:
    """Every shipped composition: at least 95% of trades the same (entry and exit candle)
    in the tuning replay and in a real Freqtrade backtest of the same candles."""
    userdir, model = market["userdir"], MODELS.get(strategy)
    summary = backtest(
        strategy=strategy,
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        timerange="",
        model=f"{model}@champion" if model else None,
        context=local_context(userdir, market["uri"]),
        walk_forward=model is not None,
    )
    engine = parse_result_zip(summary.result_zip, strategy).trades
    candles = load_candles(UserDir(userdir), "binance", "BTC/USDT", "1h").reset_index(drop=True)
    start = candles.index[candles["date"] >= summary.metrics.start][0]
    if model is None:
        predictions = pd.DataFrame(index=candles.index[start:])
    else:
        client = configure(market["uri"], UserDir(userdir))
        training_run = client.get_run(summary.run_id).data.tags["model_run_id"]
        stitched = pd.read_parquet(
            UserDir(userdir).walk_forward(training_run) / "walk_forward_predictions.parquet"
        )
        predictions = candles[["date"]].merge(stitched, on="date", how="left").iloc[start:]
    info = {i.name: i for i in introspect(REPO_STRATEGIES)}[strategy]
    replayed = replay(candles, predictions, default_params(info), fee=0.001, timeframe="1h")
    ours = {
        (pd.Timestamp(t.entry_date), pd.Timestamp(t.exit_date))
        for t in replayed.trades.itertuples()
        if t.exit_reason != "end_of_data"
    }
    theirs = {
        (pd.Timestamp(t.open_date), pd.Timestamp(t.close_date))
        for t in engine.itertuples()
        if t.exit_reason != "force_exit"
    }
    assert len(theirs) >= 10, f"{strategy}: too few trades to compare ({len(theirs)})"
    agreement = len(ours & theirs) / max(len(ours), len(theirs))
    assert agreement >= 0.95, (
        strategy,
        len(ours),
        len(theirs),
        sorted(ours)[:3],
        sorted(theirs)[:3],
    )
    if SHIPPED[strategy].uses("take_profit_ladder"):
        partial = engine["orders"].map(lambda orders: sum(not o["ft_is_entry"] for o in orders))
        assert (partial > 1).any() and (replayed.trades["partial_exits"] > 0).any()
