"""Benchmark: our walk-forward LightGBM pipeline against FreqAI's, end to end.

Same data (Freqtrade's test candles, ETH/BTC and LTC/BTC 5m), the same windows:
6 days of training, 2-day test windows, 2018-01-18 .. 2018-01-30 (6 windows).

* FreqAI: ``freqtrade backtesting --freqaimodel LightGBMRegressor`` with
  ``FreqaiRegimeStrategy``; FreqAI retrains inside the backtest for every window.
* Ours: ``tradingbot train`` of a rolling walk-forward LightGBM spec with the same
  windows (features, 6 fold bundles, MLflow run, registered model), then one
  ``tradingbot backtest --walk-forward`` per pair: the fold bundles' stitched
  out-of-sample predictions drive a single Freqtrade backtest.

Then both again with FreqAI's data pipeline (:data:`PIPELINE`: PCA, SVM outlier removal
and recency weights), FreqAI's in its config and ours in the spec's ``[pipeline]``: the
same keys, the same values.

Both run offline, one pair at a time, in this script. Wall times include
everything each path does. A third row measures the floor of any pipeline that
ends in a Freqtrade backtest: the same offline backtest of a trivial strategy (no
model, no features). The last line is FreqAI's time / ours (target: >= 1.0x, goal
1.5x: ours at least as fast). ``--breakdown`` also prints where our time goes: each
stage of training and of the backtest as they report progress, summed over the pairs.

    .venv/bin/python bench/backtest_vs_freqai.py [--breakdown]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from common.layout import UserDir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.context import RunContext  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from experiments.backtesting.run import backtest  # noqa: E402
from experiments.spec import ExperimentSpec, parse_experiment  # noqa: E402
from experiments.training import train  # noqa: E402
from features.data import import_candles  # noqa: E402
from ml.registry import promote  # noqa: E402
from ml.tracking import configure, default_tracking_uri  # noqa: E402
from strategies.results import parse_result_zip  # noqa: E402
from strategies.runner import BacktestRequest, freqai_section, run_backtest  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "freqtrade-testdata"
PAIRS = ("ETH/BTC", "LTC/BTC")
CANDLES_PER_DAY = 288
TIMERANGE = "20180118-20180130"
# FreqAI's data pipeline settings, the same on both sides. nu = 0.05 rather than FreqAI's
# 0.01, which flags almost no row of these windows (tests/ml/test_input_pipeline.py)
PIPELINE = {
    "principal_component_analysis": True,
    "use_SVM_to_remove_outliers": True,
    "svm_params": {"shuffle": False, "nu": 0.05},
    "weight_factor": 0.9,
}


def freqai(userdir: Path, pair: str, pipeline: bool = False) -> tuple[float, int]:
    start = time.perf_counter()
    section = {**freqai_section(verbosity=-1), "identifier": "bench"}
    if pipeline:
        features = dict(section["feature_parameters"])  # type: ignore[call-overload]
        section["feature_parameters"] = {**features, **PIPELINE}
    request = BacktestRequest(
        strategy="FreqaiRegimeStrategy",
        pair=pair,
        timeframe="5m",
        timerange=TIMERANGE,
        freqai=section,
        freqaimodel="LightGBMRegressor",
    )
    run = run_backtest(request, UserDir(userdir), environment=os.environ, use_cache=False)
    trades = parse_result_zip(run.result_zip, "FreqaiRegimeStrategy").metrics.trades
    return time.perf_counter() - start, trades


def lightgbm_spec(
    name: str, market: dict[str, object], pipeline: dict[str, object] | None = None
) -> ExperimentSpec:
    """Our side of the comparison: FreqAI's windows and LightGBM settings, walk-forward
    (6 rolling folds of 6 training and 2 test days), on ``market`` (``pair`` or ``pairs``);
    ``pipeline``: a ``[pipeline]`` section."""
    return parse_experiment(
        {
            **({"pipeline": pipeline} if pipeline else {}),
            "name": name,
            "data": {**market, "timeframe": "5m", "timerange": "20180112-20180130"},
            "regime": {"n_restarts": 2},
            "model": {
                "kind": "lightgbm",
                "params": {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15},
            },
            "target": {"kind": "direction", "horizon": 12},
            "walk_forward": {
                "scheme": "rolling",
                "folds": 6,
                "test_size": 2 * CANDLES_PER_DAY,
                "train_size": 6 * CANDLES_PER_DAY,
            },
        },
        source="bench",
    )


def import_test_candles(userdir: Path, pairs: tuple[str, ...]) -> Path:
    """Freqtrade's 5m test candles of ``pairs`` imported into ``userdir``."""
    for pair in pairs:
        import_candles(
            DATA / f"{pair.replace('/', '_')}-5m.feather",
            pair=pair,
            timeframe="5m",
            exchange="binance",
            layout=UserDir(userdir),
        )
    return userdir


STAGES: dict[str, float] = {}  # ours: seconds by stage, summed over the pairs


class _Stopwatch:
    """A progress callback that charges the time since the last call to the stage that
    was running: the text of the last call, or for "fold k/n done" (said when a fold
    ends) the folds, whose first one also holds the features and the MLflow run's set-up."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.stage = "start"
        self.since = time.perf_counter()

    def __call__(self, text: str) -> None:
        ended_fold = text.startswith("fold ")
        if ended_fold:
            self.stage = "features, run set-up and walk-forward folds"
        self.stop()
        self.stage = self.stage if ended_fold else text

    def stop(self) -> None:
        now = time.perf_counter()
        key = f"{self.prefix}: {self.stage}"
        STAGES[key] = STAGES.get(key, 0.0) + now - self.since
        self.since = now


def ours(userdir: Path, pair: str, pipeline: bool = False) -> tuple[float, int]:
    from ml import regime_memo

    regime_memo.clear()  # each run fits its regime models: none is reused from a run before
    start = time.perf_counter()
    name = f"bench_{pair.replace('/', '_').lower()}"
    spec = lightgbm_spec(name, {"pair": pair}, PIPELINE if pipeline else None)
    uri = default_tracking_uri(userdir)
    training = _Stopwatch("train")
    result = train(spec, context=RunContext(userdir, uri, os.environ), progress=training)
    training.stop()
    promote(
        configure(uri, UserDir(userdir)), name, result.version, "bench", user="bench", force=True
    )
    backtesting = _Stopwatch("backtest")
    summary = backtest(
        strategy="RegimeStrategy",
        pair=pair,
        timeframe="5m",
        exchange="binance",
        timerange="",
        model=f"{name}@champion",
        context=RunContext(userdir, uri, os.environ),
        use_cache=False,
        walk_forward=True,
        progress=backtesting,
    )
    backtesting.stop()
    return time.perf_counter() - start, summary.metrics.trades


FLOOR_STRATEGY = """
from freqtrade.strategy import IStrategy


class FloorStrategy(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "5m"
    minimal_roi = {"0": 0.02}
    stoploss = -0.05

    def populate_indicators(self, dataframe, metadata):
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        dataframe["enter_long"] = (dataframe["close"] > dataframe["open"]).astype(int)
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        dataframe["exit_long"] = (dataframe["close"] < dataframe["open"]).astype(int)
        return dataframe
"""


def floor(userdir: Path, pair: str) -> tuple[float, int]:
    """The floor of any pipeline that ends in a Freqtrade backtest: one offline backtest
    of a trivial strategy (no model, no features) over the same timerange."""
    strategies = userdir / "floor_strategy"
    strategies.mkdir(exist_ok=True)
    (strategies / "FloorStrategy.py").write_text(FLOOR_STRATEGY)
    start = time.perf_counter()
    request = BacktestRequest(
        strategy="FloorStrategy",
        pair=pair,
        timeframe="5m",
        timerange=TIMERANGE,
        strategy_dir=strategies,
    )
    run = run_backtest(request, UserDir(userdir), environment=os.environ, use_cache=False)
    trades = parse_result_zip(run.result_zip, "FloorStrategy").metrics.trades
    return time.perf_counter() - start, trades


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--breakdown", action="store_true", help="where our time goes")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"needs Freqtrade's test candles in {DATA}")
    rows = []
    runs: tuple[tuple[str, Callable[[Path, str], tuple[float, int]]], ...] = (
        ("FreqAI LightGBMRegressor", freqai),
        ("ours: train + walk-forward backtest", ours),
        ("floor: Freqtrade alone, trivial strategy", floor),
        ("FreqAI + PCA, SVM outliers, weights", partial(freqai, pipeline=True)),
        ("ours + the same [pipeline]", partial(ours, pipeline=True)),
    )
    with tempfile.TemporaryDirectory() as tmp:
        for number, (label, runner) in enumerate(runs):
            userdir = Path(tmp) / f"run{number}"
            import_test_candles(userdir, PAIRS)
            total, trades = 0.0, 0
            for pair in PAIRS:
                seconds, count = runner(userdir, pair)
                total += seconds
                trades += count
            rows.append((label, total, trades))
    print(
        f"data: {', '.join(PAIRS)} 5m, windows 6 d train / 2 d test over {TIMERANGE}; offline, 2 cores"
    )
    print(f"{'pipeline':<40}{'wall s':>10}{'trades':>8}")
    for label, seconds, trades in rows:
        print(f"{label:<40}{seconds:>10.1f}{trades:>8}")
    print(
        f"the target needs ours <= {rows[0][1]:.1f} s; one plain Freqtrade backtest per pair "
        f"already takes {rows[2][1]:.1f} s (FreqAI / floor = {rows[0][1] / rows[2][1]:.2f}x)"
    )
    if args.breakdown:
        print(
            "ours, by stage (both pairs, both of our rows; a stage runs until the next one starts):"
        )
        for stage, seconds in STAGES.items():
            print(f"  {stage:<64}{seconds:>8.2f}")
    print(f"ratio FreqAI / ours (end to end): {rows[0][1] / rows[1][1]:.2f}x (target >= 1.0x)")
    print(f"with the data pipeline: {rows[3][1] / rows[4][1]:.2f}x (pipeline settings: {PIPELINE})")


if __name__ == "__main__":
    main()
