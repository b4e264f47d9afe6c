"""`make demo`: the main job on embedded defaults.

Stages so far: data (the real BTC/USDT 1h export when ``../shared/data`` is
there, else a seeded synthetic regime-switching market, and it says which) ->
quality report -> causal features. Later stages (training, backtest, report)
are added here as they land.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from experiments.features import build_features
from experiments.render import feature_summary, quality_report
from features.data import ImportOptions, import_candles
from features.data.synthetic import generate
from features.frames import write_feature_file
from features.spec import default_spec

DEMO_PAIR = "BTC/USDT"
DEMO_TIMEFRAME = "1h"
DEMO_EXCHANGE = "binance"
REAL_FILE = Path("binance-csv") / "Binance_BTCUSDT_1h.csv.gz"
SYNTHETIC_CANDLES = 24 * 365
SYNTHETIC_SEED = 7


def _heading(console: Console, text: str) -> None:
    console.rule()
    console.print(f"[bold]{text}[/]")


def run_demo(console: Console, *, userdir: Path, shared_data: Path) -> None:
    real = shared_data / REAL_FILE
    options = ImportOptions(repair=True)
    if real.exists():
        _heading(console, f"1/2 data: real Binance {DEMO_PAIR} {DEMO_TIMEFRAME} from {real}")
        result = import_candles(
            real,
            pair=DEMO_PAIR,
            timeframe=DEMO_TIMEFRAME,
            exchange=DEMO_EXCHANGE,
            userdir=userdir,
            options=options,
        )
    else:
        _heading(
            console,
            f"1/2 data: {real} not found, using a seeded synthetic regime-switching market "
            f"({SYNTHETIC_CANDLES:,} candles, seed {SYNTHETIC_SEED})",
        )
        candles, _ = generate(SYNTHETIC_CANDLES, seed=SYNTHETIC_SEED)
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "synthetic_BTC_USDT-1h.feather"
            candles.to_feather(source)
            result = import_candles(
                source,
                pair=DEMO_PAIR,
                timeframe=DEMO_TIMEFRAME,
                exchange=DEMO_EXCHANGE,
                userdir=userdir,
                options=options,
            )
    quality_report(console, result.report, title="import report")
    console.print(f"candles: {result.candles_path}")

    _heading(console, "2/2 features: default causal feature set")
    spec = default_spec()
    built = build_features(
        pair=DEMO_PAIR, timeframe=DEMO_TIMEFRAME, exchange=DEMO_EXCHANGE, userdir=userdir, spec=spec
    )
    out = userdir / "features" / f"BTC_USDT-{DEMO_TIMEFRAME}-{spec.hash}.parquet"
    write_feature_file(built.frame, built.meta, out)
    feature_summary(console, built.meta, out=str(out), cache_hit=built.cache_hit)
    console.print(
        "\nNext: `tradingbot data check --pair BTC/USDT --timeframe 1h`, "
        "`tradingbot features build --help`. Model training, backtests and reports "
        "join the demo as they land."
    )
