"""One resolver for what a backtest runs (issue 26): asked values win, the spec fills in
the rest, a composed strategy brings its timeframe; the CLI merges nothing itself."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from common.errors import SpecError
from common.layout import UserDir
from experiments.backtesting.options import BacktestOptions, resolve_backtest
from experiments.spec import ExperimentSpec, parse_experiment

SPEC = """
name = "opts"

[data]
{data}
timeframe = "1h"
exchange = "kraken"

[model]
kind = "regime_allocation"

[backtest]
timerange = "20210101-20210301"
strategy = "RegimeAllocationStrategy"
"""


def _spec(data: str = 'pair = "BTC/USDT"') -> ExperimentSpec:
    return parse_experiment(tomllib.loads(SPEC.format(data=data)), source="test")


def test_the_spec_fills_in_what_was_not_asked(tmp_path: Path) -> None:
    plan = resolve_backtest(BacktestOptions(spec=_spec()), UserDir(tmp_path))
    assert (plan.pair, plan.timeframe, plan.exchange) == ("BTC/USDT", "1h", "kraken")
    assert plan.model == "opts@champion" and plan.strategy == "RegimeAllocationStrategy"
    assert plan.timerange == "20210101-20210301" and plan.pairs == ()


def test_asked_values_win_and_walking_forward_takes_the_folds_span(tmp_path: Path) -> None:
    asked = BacktestOptions(
        spec=_spec(), pair="ETH/USDT", model="other@challenger", walk_forward=True
    )
    plan = resolve_backtest(asked, UserDir(tmp_path))
    assert (plan.pair, plan.model, plan.timerange) == ("ETH/USDT", "other@challenger", "")
    narrowed = BacktestOptions(spec=_spec(), walk_forward=True, timerange="20210201-20210301")
    assert resolve_backtest(narrowed, UserDir(tmp_path)).timerange == "20210201-20210301"


def test_a_whitelist_spec_backtests_its_pairs_unless_one_is_asked(tmp_path: Path) -> None:
    spec = _spec('pairs = ["BTC/USDT", "ETH/USDT"]')
    whitelist = resolve_backtest(BacktestOptions(spec=spec), UserDir(tmp_path))
    assert whitelist.pairs == ("BTC/USDT", "ETH/USDT") and whitelist.markets == list(
        whitelist.pairs
    )
    one = resolve_backtest(BacktestOptions(spec=spec, pair="ETH/USDT"), UserDir(tmp_path))
    assert one.pairs == () and one.markets == ["ETH/USDT"]
    listed = resolve_backtest(BacktestOptions(spec=spec, pairs=("XRP/USDT",)), UserDir(tmp_path))
    assert listed.pair == "XRP/USDT" and listed.pairs == ()


def test_a_composed_strategy_brings_its_timeframe_and_a_note_when_overridden(
    tmp_path: Path,
) -> None:
    asked = BacktestOptions(strategy="TrendPullbackStrategy", pair="BTC/USDT", timerange="-")
    plan = resolve_backtest(asked, UserDir(tmp_path))
    assert plan.timeframe == "1h" and plan.notes == ()
    other = resolve_backtest(
        BacktestOptions(
            strategy="TrendPullbackStrategy", pair="BTC/USDT", timeframe="4h", timerange="-"
        ),
        UserDir(tmp_path),
    )
    assert other.timeframe == "4h" and "composed for 1h" in other.notes[0]


@pytest.mark.parametrize(
    ("asked", "says"),
    [
        (BacktestOptions(pair="BTC/USDT", timeframe="1h"), "give a SPEC.toml"),
        (BacktestOptions(timeframe="1h", timerange="-"), "give a SPEC.toml"),
        (
            BacktestOptions(timeframe="1h", timerange="-", pairs=("A/B", "A/B")),
            "listed twice",
        ),
    ],
)
def test_what_cannot_run_is_refused(tmp_path: Path, asked: BacktestOptions, says: str) -> None:
    with pytest.raises(SpecError, match=says):
        resolve_backtest(asked, UserDir(tmp_path))
