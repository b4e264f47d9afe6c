"""Benchmark: a 10-pair whitelist, one model per pair, against FreqAI on the same windows.

Data: the 10 pairs of Freqtrade's test candles (5m, quoted in BTC); 6 days of training,
2-day test windows over 2018-01-18 .. 2018-01-30 (6 windows), as bench/backtest_vs_freqai.py.

* FreqAI: one ``freqtrade backtesting --freqaimodel LightGBMRegressor`` over the
  whitelist with ``FreqaiRegimeStrategy``; FreqAI retrains every pair in every window.
* Ours, as ``tradingbot train --jobs <cores> --backtest`` of a whitelist spec runs it: one
  rolling walk-forward LightGBM per pair, MLflow parent run, 10 models registered as
  ``challenger``, then the walk-forward backtest of the challengers over the whitelist
  (each pair's out-of-sample predictions drive one Freqtrade backtest of all 10 pairs),
  in a Freqtrade process started with the command, which imports while the pairs train
  (until session 17: two commands, ``train`` then ``backtest --walk-forward``).
  Promoting them (``tradingbot promote``, about 0.3 s a model) is the decision that
  follows the backtest, not part of it, and is not timed (until session 16 it was).

Both offline, in one process each, on this machine; wall times include everything
each path does. The last line is FreqAI's time / ours (goal: > 1, ours faster).

    .venv/bin/python bench/pairs.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from common.layout import UserDir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.context import RunContext  # noqa: E402
from common.executors import ProcessPool  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from bench.backtest_vs_freqai import import_test_candles, lightgbm_spec  # noqa: E402
from experiments.backtesting.run import backtest  # noqa: E402
from experiments.training import train_whitelist  # noqa: E402
from ml.tracking import default_tracking_uri  # noqa: E402
from strategies.freqtrade_process import StartedFreqtrade  # noqa: E402
from strategies.results import parse_result_zip  # noqa: E402
from strategies.runner import BacktestRequest, freqai_section, run_backtest  # noqa: E402
from tradingbot._app import TRAINING_WORKER  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "freqtrade-testdata"
PAIRS = (
    "ADA/BTC",
    "DASH/BTC",
    "ETC/BTC",
    "ETH/BTC",
    "LTC/BTC",
    "NXT/BTC",
    "TRX/BTC",
    "XLM/BTC",
    "XMR/BTC",
    "ZEC/BTC",
)
TIMERANGE = "20180118-20180130"
JOBS = os.cpu_count() or 1  # pairs trained at once (tradingbot train --jobs)


def freqai(userdir: Path) -> tuple[float, int]:
    start = time.perf_counter()
    request = BacktestRequest(
        strategy="FreqaiRegimeStrategy",
        pairs=PAIRS,
        timeframe="5m",
        timerange=TIMERANGE,
        max_open_trades=len(PAIRS),
        freqai={**freqai_section(verbosity=-1), "identifier": "bench_pairs"},
        freqaimodel="LightGBMRegressor",
    )
    run = run_backtest(request, UserDir(userdir), environment=os.environ, use_cache=False)
    trades = parse_result_zip(run.result_zip, "FreqaiRegimeStrategy").metrics.trades
    return time.perf_counter() - start, trades


PARTS: dict[str, float] = {}  # ours, by stage


def _walk_forward_backtest(
    userdir: Path, uri: str, model: str, started: StartedFreqtrade | None = None
) -> int:
    """One Freqtrade backtest of the whitelist on the model's walk-forward predictions, in
    ``started`` if given; returns its number of trades."""
    summary = backtest(
        strategy="RegimeStrategy",
        pair=PAIRS[0],
        pairs=PAIRS,
        timeframe="5m",
        exchange="binance",
        timerange="",
        model=model,
        context=RunContext(userdir, uri, os.environ),
        use_cache=False,
        walk_forward=True,
        started=started,
    )
    return summary.metrics.trades


def ours(userdir: Path) -> tuple[float, int]:
    start = time.perf_counter()
    spec = lightgbm_spec("bench_pairs", {"pairs": list(PAIRS)})  # the same as the 2-pair bench
    uri = default_tracking_uri(userdir)
    # as tradingbot train --backtest: Freqtrade's process starts first, and the local
    # executor as --jobs JOBS makes it, whose fork server imports while this process
    # opens the store
    with StartedFreqtrade(os.environ) as started:
        with ProcessPool(JOBS, TRAINING_WORKER) as executor:
            executor.warm()
            train_whitelist(spec, context=RunContext(userdir, uri, os.environ), executor=executor)
        PARTS["  of which: train 10 pairs, register"] = time.perf_counter() - start
        backtested = time.perf_counter()
        trades = _walk_forward_backtest(userdir, uri, "bench_pairs@challenger", started)
    PARTS["  of which: walk-forward whitelist backtest"] = time.perf_counter() - backtested
    return time.perf_counter() - start, trades


def pooled(userdir: Path) -> tuple[float, int]:
    """One pooled model over the whitelist (``[data] pooling = "pooled"``, the same folds),
    then the same walk-forward backtest, each pair trading its own out-of-sample
    predictions of the pooled folds."""
    from experiments.training import train

    start = time.perf_counter()
    spec = lightgbm_spec("bench_pooled", {"pairs": list(PAIRS), "pooling": "pooled"})
    uri = default_tracking_uri(userdir)
    with StartedFreqtrade(os.environ) as started:  # as tradingbot train --backtest
        train(spec, context=RunContext(userdir, uri, os.environ))
        PARTS["  of which: train one pooled model, register"] = time.perf_counter() - start
        backtested = time.perf_counter()
        trades = _walk_forward_backtest(userdir, uri, "bench_pooled@challenger", started)
    PARTS["  of which: its walk-forward whitelist backtest"] = time.perf_counter() - backtested
    return time.perf_counter() - start, trades


def main() -> None:
    if not DATA.exists():
        sys.exit(f"needs Freqtrade's test candles in {DATA}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, runner in (
            ("FreqAI LightGBMRegressor, one backtest", freqai),
            (f"ours: train --jobs {JOBS} --backtest", ours),
            ("ours pooled: train --backtest", pooled),
        ):
            userdir = Path(tmp) / label.split()[0].lower().rstrip(":")
            import_test_candles(userdir, PAIRS)
            seconds, trades = runner(userdir)
            rows.append((label, seconds, trades))
    print(
        f"data: {len(PAIRS)} pairs 5m ({', '.join(PAIRS)}), windows 6 d train / 2 d test "
        f"over {TIMERANGE}; offline, {os.cpu_count()} cores"
    )
    print(f"{'pipeline':<42}{'wall s':>10}{'trades':>8}")
    for label, seconds, trades in rows:
        print(f"{label:<42}{seconds:>10.1f}{trades:>8}")
    for label, seconds in PARTS.items():
        print(f"{label:<42}{seconds:>10.1f}")
    print(f"ratio FreqAI / ours pooled (end to end): {rows[0][1] / rows[2][1]:.2f}x")
    print(f"ratio FreqAI / ours (end to end): {rows[0][1] / rows[1][1]:.2f}x (goal > 1)")


if __name__ == "__main__":
    main()
