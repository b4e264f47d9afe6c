"""The ``vol_target`` position block: a composition's position sized by forecast risk,
resized by the one rule of ml.sizing, in the tuning replay and in the real engine alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.layout import UserDir
from experiments.backtesting.run import backtest
from features.data import load_candles
from features.data.synthetic import generate
from ml.tracking import default_tracking_uri
from strategies.composition import Composition, load_composition
from strategies.params import StrategyParams
from strategies.position_rules import vol_target_scale
from strategies.replay import replay
from strategies.results import parse_result_zip
from tests.conftest import import_synthetic, local_context

# long while the close is above its 100-candle mean: trades that last days, so that
# daily resizes happen inside them
SIZED = """
[strategy]
name = "{name}"
doc = "Trend with its position sized by forecast risk."
timeframe = "1h"
entry = ["trend_filter"]
exit = ["trend_break"{sizing}]
stoploss = -0.99
minimal_roi = {{ "0" = 100.0 }}
startup_candle_count = 200

[strategy.parameters]
sma_window = 100
exit_sma_window = 100
{target}
"""


def _composition(tmp: Path, name: str, sized: bool, target: float = 0.3) -> Path:
    folder = tmp / "compositions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(
        SIZED.format(
            name=name,
            sizing=', "vol_target"' if sized else "",
            target=f"vol_target = {target}" if sized else "",
        )
    )
    return path


def _hourly(rows: int, seed: int) -> pd.DataFrame:
    candles, _ = generate(rows, seed=seed)
    candles["date"] = pd.date_range("2021-01-01", periods=rows, freq="1h", tz="UTC")
    return candles


def test_the_scale_is_causal_and_prefers_the_models_forecast() -> None:
    frame = _hourly(900, seed=5)
    values = {"vol_target": 0.3}
    full = vol_target_scale(frame, values)
    prefix = vol_target_scale(frame.iloc[:500].copy(), values)
    np.testing.assert_array_equal(full[:500], prefix)
    assert (full[:167] == 1.0).all()  # no week of history yet: unsized
    assert ((full > 0) & (full <= 1.0)).all() and (full[200:] < 1.0).any()
    frame["&-volatility"] = 0.6  # a sized model's forecast: twice the target
    np.testing.assert_allclose(vol_target_scale(frame, values), 0.5)


def _params(composition: Composition) -> StrategyParams:
    spaces: dict[str, dict[str, float]] = {}
    for param in composition.params():
        spaces.setdefault(param.space, {})[param.name] = param.default
    return StrategyParams(
        strategy=composition.name,
        spaces=spaces,
        stoploss=-0.99,
        minimal_roi={"0": 100.0},
        composition=composition,
    )


def test_the_replay_stakes_the_scale_and_resizes_at_most_daily(tmp_path: Path) -> None:
    candles = _hourly(3000, seed=11)
    predictions = pd.DataFrame(index=candles.index[250:])
    runs = {}
    for sized in (False, True):
        composition = load_composition(_composition(tmp_path, f"Trend{sized}", sized))
        runs[sized] = replay(candles, predictions, _params(composition), fee=0.001, timeframe="1h")
    plain, sized = runs[False].trades, runs[True].trades
    # the same decisions to enter and leave: sizing changes how much, not when
    pd.testing.assert_frame_equal(
        plain[["entry_index", "exit_index"]], sized[["entry_index", "exit_index"]]
    )
    assert (plain["resizes"] == 0).all()
    long_trades = sized[(sized["exit_index"] - sized["entry_index"]) > 48]
    assert len(long_trades) and (long_trades["resizes"] > 0).any()
    # at most one resize a day of the trade's life
    days = (sized["exit_index"] - sized["entry_index"]) / 24.0
    assert (sized["resizes"] <= days + 1).all()
    # holding less in a market whose volatility is above the 30% target
    assert runs[True].metrics["max_drawdown"] < runs[False].metrics["max_drawdown"]


@pytest.mark.slow
def test_the_engine_resizes_the_trades_the_replay_resizes(tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=3000, seed=11)
    name = "SizedTrendTest"
    _composition(userdir / "strategies", name, sized=True)
    summary = backtest(
        strategy=name,
        pair="BTC/USDT",
        timeframe="1h",
        exchange="binance",
        timerange="",
        model=None,
        context=local_context(userdir, default_tracking_uri(userdir)),
    )
    engine = parse_result_zip(summary.result_zip, name).trades
    candles = load_candles(UserDir(userdir), "binance", "BTC/USDT", "1h").reset_index(drop=True)
    start = candles.index[candles["date"] >= summary.metrics.start][0]
    composition = load_composition(userdir / "strategies" / "compositions" / f"{name}.toml")
    replayed = replay(
        candles,
        pd.DataFrame(index=candles.index[start:]),
        _params(composition),
        fee=0.001,
        timeframe="1h",
    ).trades
    ours = set(zip(replayed["entry_date"], replayed["exit_date"], strict=True))
    theirs = {
        (pd.Timestamp(t.open_date), pd.Timestamp(t.close_date))
        for t in engine.itertuples()
        if t.exit_reason != "force_exit"
    }
    assert len(theirs) >= 5
    assert len({(pd.Timestamp(a), pd.Timestamp(b)) for a, b in ours} & theirs) >= 0.95 * len(theirs)
    adjustments = engine["orders"].map(len) - 2  # beyond the entry and the exit
    assert (adjustments > 0).any() and (replayed["resizes"] > 0).any()
    resized = engine[adjustments > 0]
    held_days = (
        pd.to_datetime(resized["close_date"]) - pd.to_datetime(resized["open_date"])
    ).dt.total_seconds() / 86_400
    assert (adjustments[adjustments > 0] <= held_days + 1).all()  # at most daily
