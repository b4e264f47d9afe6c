"""Benchmark: paper trading on a replayed market, two weeks of BTC/USDT 1h at full speed.

Trains a LightGBM spec on BTC/USDT 1h up to 2021-03-01 (real candles from ../shared),
promotes it, then runs ``tradingbot paper --replay`` (Freqtrade's bot loop, dry-run,
offline) over 2021-03-01 .. 2021-03-15, and a backtest of the same candles, and prints
the wall time of the replay (goal: under a minute) and how the trades compare.

    .venv/bin/python bench/replay.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common.layout import UserDir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.context import RunContext  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from experiments.paper import replay_paper  # noqa: E402
from experiments.spec import parse_experiment  # noqa: E402
from experiments.training import train  # noqa: E402
from features.data import import_candles  # noqa: E402
from ml.registry import promote  # noqa: E402
from ml.tracking import configure, default_tracking_uri  # noqa: E402

CANDLES = ROOT.parent / "shared" / "data" / "binance-csv" / "Binance_BTCUSDT_1h.csv.gz"
TIMERANGE = "20210301-20210315"


def main() -> None:
    if not CANDLES.exists():
        sys.exit(f"needs the real BTC/USDT 1h candles in {CANDLES}")
    with tempfile.TemporaryDirectory() as tmp:
        userdir = Path(tmp) / "ud"
        import_candles(
            CANDLES, pair="BTC/USDT", timeframe="1h", exchange="binance", layout=UserDir(userdir)
        )
        spec = parse_experiment(
            {
                "name": "bench_replay",
                "data": {"timerange": "20190101-20210301"},
                "model": {"kind": "lightgbm", "params": {"n_estimators": 100, "num_leaves": 15}},
                "walk_forward": {"folds": 2},
            },
            source="bench",
        )
        uri = default_tracking_uri(userdir)
        result = train(spec, context=RunContext(userdir, uri, os.environ))
        promote(
            configure(uri, UserDir(userdir)),
            "bench_replay",
            result.version,
            "bench",
            user="bench",
            force=True,
        )
        config = json.loads((ROOT / "user_data" / "config.dryrun.json").read_text())
        config["tradingbot"]["model_uri"] = "models:/bench_replay@champion"
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        started = time.perf_counter()
        replayed, summary, compared = replay_paper(
            config=Path(tmp) / "config.json",
            context=RunContext(userdir, uri, os.environ),
            timerange=TIMERANGE,
            strategy=None,
            model=None,
            quiet=True,
        )
        total = time.perf_counter() - started
        print(replayed.trades.to_string())
        from strategies.results import parse_result_zip

        print(
            parse_result_zip(summary.result_zip, "RegimeStrategy")
            .trades[["pair", "open_date", "open_rate", "close_date", "close_rate", "exit_reason"]]
            .to_string()
        )
    print(
        f"BTC/USDT 1h {TIMERANGE}: {replayed.steps} candles through FreqtradeBot.process, offline"
    )
    print(f"{'replay (bot loop only)':<40}{replayed.wall_seconds:>8.1f} s  (goal < 60 s)")
    print(f"{'replay + backtest + comparison':<40}{total:>8.1f} s")
    print(
        f"trades: {len(replayed.trades)} replayed, {summary.metrics.trades} backtested; "
        f"{len(compared.matched)} in both, {len(compared.unexplained)} differences "
        "intra-candle fills do not explain"
    )
    if len(compared.unexplained):
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(
                compared.unexplained.drop(
                    columns=["enter_tag_replay", "enter_tag_backtest"], errors="ignore"
                )
            )


if __name__ == "__main__":
    main()
