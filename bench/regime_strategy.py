"""The regime allocation spec walk-forward on every real market, beside the trend rules.

For each market in ``../shared/data/binance-csv`` (BTC/USDT 1h, BTC/USDT daily,
BNB/USDT daily) the scorecard (``tradingbot scorecard``) runs the same spec,
unchanged but for pair and timeframe: trained walk-forward (refit every quarter on
all candles before it, read out causally on the next quarter), its fold models
backtested walk-forward with the spec's strategy on the real Freqtrade engine,
offline, 0.1% fee. The wallet is valued at every
close and compared with buy and hold, the daily SMA50 rule and 30-day momentum on
the same candles and fee. The training pipeline's own simulation (``sim``) and the
regime-only allocation are shown for reference. Printed: one table per market,
the issue's targets with PASS/FAIL, and a last line that sums them up.

    .venv/bin/python bench/regime_strategy.py [--spec experiments/specs/btc_1h_regime_allocation.toml]
        [--end 20210601] [--markets btc_1h,btc_1d,bnb_1d]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common.layout import UserDir

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from common.context import RunContext  # noqa: E402
from experiments.backtesting.scorecard import scorecard  # noqa: E402
from experiments.spec import ExperimentSpec, load_experiment  # noqa: E402
from features.data import ImportOptions, import_candles  # noqa: E402
from ml.tracking import default_tracking_uri  # noqa: E402

SHARED = Path(os.environ.get("TRADINGBOT_SHARED_DATA", ROOT.parent / "shared" / "data"))
MARKETS = {
    "btc_1h": ("Binance_BTCUSDT_1h.csv.gz", "BTC/USDT", "1h"),
    "btc_1d": ("Binance_BTCUSDT_d.csv.gz", "BTC/USDT", "1d"),
    "bnb_1d": ("Binance_BNBUSDT_d.csv.gz", "BNB/USDT", "1d"),
}
SHOWN = ("engine", "sim", "always_long", "sma50_daily", "momentum_30d", "regime_only")


def import_market(name: str, root: Path) -> Path:
    """Import one of :data:`MARKETS` (bad ticks repaired) into its own user dir under
    ``root``; returns that user dir."""
    filename, pair, timeframe = MARKETS[name]
    userdir = root / name
    import_candles(
        SHARED / "binance-csv" / filename,
        pair=pair,
        timeframe=timeframe,
        exchange="binance",
        layout=UserDir(userdir),
        options=ImportOptions(repair=True),
    )
    return userdir


def run_market(name: str, spec: ExperimentSpec, end: str, root: Path) -> dict[str, object]:
    """Import one market into its own user dir and run the scorecard on it."""
    _, pair, timeframe = MARKETS[name]
    userdir = import_market(name, root)
    card = scorecard(
        spec,
        [pair],
        context=RunContext(userdir, default_tracking_uri(userdir), os.environ),
        timeframe=timeframe,
        timerange=f"-{end}",
    )
    (market,) = card.markets
    trained = market.walk_forward
    rows = {
        "engine": market.rows["strategy"],
        "sim": trained["model"],
        "always_long": market.rows["always_long"],
        "sma50_daily": market.rows["sma50_daily"],
        "momentum_30d": market.rows["momentum_30d"],
        "regime_only": trained["regime_only"],
        "always_long_sized": market.rows["always_long_sized"],
        "sma50_sized": market.rows["sma50_sized"],
    }
    return {
        "market": f"{pair} {timeframe}",
        "window": market.window,
        "rows": rows,
        "median_regime_days": trained["model"]["regime_median_days"],
    }


def print_market(result: dict[str, object]) -> None:
    rows = result["rows"]
    assert isinstance(rows, dict)
    print(f"\n{result['market']}  walk-forward {result['window']} (out-of-sample, after fees)")
    header = f"{'strategy':<14}{'return':>9}{'CAGR':>8}{'maxDD':>8}{'DD/BH':>7}{'Calmar':>8}{'Sharpe':>8}{'chg/yr':>8}{'expo':>6}"
    print(header)
    print("-" * len(header))
    for name in SHOWN:
        m = rows[name]
        print(
            f"{name:<14}{m['total_return']:>+9.0%}{m['cagr']:>+8.0%}{m['max_drawdown']:>8.1%}"
            f"{m['drawdown_vs_buy_hold']:>7.2f}{m['calmar']:>8.2f}{m['sharpe']:>8.2f}"
            f"{m['changes_per_year']:>8.1f}{m['exposure']:>6.2f}"
        )
    print(f"median regime duration {result['median_regime_days']:.1f} days")


def targets(results: dict[str, dict[str, object]]) -> list[tuple[str, bool, str]]:
    checks: list[tuple[str, bool, str]] = []
    if "btc_1h" in results:
        rows = results["btc_1h"]["rows"]
        assert isinstance(rows, dict)
        model = rows["engine"]
        best_rule = max(rows["sma50_daily"]["calmar"], rows["momentum_30d"]["calmar"])
        days = float(results["btc_1h"]["median_regime_days"])  # type: ignore[arg-type]
        checks += [
            (
                "BTC 1h max DD <= 0.6x buy and hold",
                model["drawdown_vs_buy_hold"] <= 0.6,
                f"{model['drawdown_vs_buy_hold']:.2f}x",
            ),
            (
                "BTC 1h Calmar >= best of SMA50 and 30d momentum",
                model["calmar"] >= best_rule,
                f"{model['calmar']:.2f} vs {best_rule:.2f}",
            ),
            ("BTC 1h median regime >= 10 days", days >= 10, f"{days:.1f} days"),
            (
                "BTC 1h < 40 position changes a year",
                model["changes_per_year"] < 40,
                f"{model['changes_per_year']:.1f}",
            ),
        ]
    for name, label in (("btc_1d", "BTC daily"), ("bnb_1d", "BNB daily")):
        if name not in results:
            continue
        rows = results[name]["rows"]
        assert isinstance(rows, dict)
        model, hold = rows["engine"], rows["always_long"]
        checks += [
            (
                f"{label} max DD < 0.75x buy and hold",
                model["drawdown_vs_buy_hold"] < 0.75,
                f"{model['drawdown_vs_buy_hold']:.2f}x",
            ),
            (
                f"{label} Calmar > buy and hold's",
                model["calmar"] > hold["calmar"],
                f"{model['calmar']:.2f} vs {hold['calmar']:.2f}",
            ),
        ]
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spec",
        type=Path,
        default=ROOT / "experiments" / "specs" / "btc_1h_regime_allocation.toml",
    )
    parser.add_argument("--end", default="20210601", help="end of the data used (exclusive)")
    parser.add_argument("--markets", default=",".join(MARKETS))
    options = parser.parse_args()
    if not (SHARED / "binance-csv").is_dir():
        print(f"real market data not found at {SHARED}: nothing to measure")
        return 2
    results = {}
    with tempfile.TemporaryDirectory(prefix="regime-bench-") as tmp:
        for name in options.markets.split(","):
            results[name] = run_market(name, load_experiment(options.spec), options.end, Path(tmp))
            print_market(results[name])
    checks = targets(results)
    print_checks(
        checks,
        f"regime strategy ({options.spec.name}, real Freqtrade engine, walk-forward, after fees)",
    )
    return 0


def print_checks(checks: list[tuple[str, bool, str]], what: str) -> None:
    """One PASS/FAIL line per target, then how many of them ``what`` met."""
    print()
    for label, ok, value in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {value}")
    print(f"{what}: {sum(ok for _, ok, _ in checks)}/{len(checks)} targets met")


if __name__ == "__main__":
    sys.exit(main())
