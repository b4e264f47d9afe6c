"""The regime allocation sized by forecast risk, on the Freqtrade engine, on every real market.

For each market in ``../shared/data/binance-csv`` (BTC/USDT 1h, BTC/USDT daily, BNB/USDT
daily) the scorecard runs three specs, unchanged but for pair and timeframe, each
trained walk-forward (both models refit every quarter on all candles before it) and
its fold models backtested walk-forward on the real Freqtrade engine, offline, 0.1% fee:

* ``allocation``: ``experiments/specs/btc_1h_regime_allocation.toml`` (unsized);
* ``sized: trailing``: the sized spec with the trailing week of daily closes as its
  forecast (``forecast = "trailing"``);
* ``sized: model``: ``experiments/specs/btc_1h_regime_allocation_sized.toml`` (its
  LightGBM volatility forecast).

Beside them, on the same candles and fee: buy and hold, the daily SMA50 rule, 30-day
momentum, and buy and hold and SMA50 sized by the trailing week toward the same target
with the same band (``ml.baselines.rule_positions``). Printed: a table per market, the
issue's targets with PASS/FAIL.

    .venv/bin/python bench/sized_allocation.py [--markets btc_1h,btc_1d,bnb_1d] [--end 20210601]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.regime_strategy import MARKETS, SHARED, print_checks, run_market  # noqa: E402
from experiments.spec import ExperimentSpec, load_experiment  # noqa: E402

SPECS = ROOT / "experiments" / "specs"
RULES = ("always_long", "sma50_daily", "momentum_30d", "always_long_sized", "sma50_sized")
BEATEN = ("sma50_daily", "momentum_30d", "sma50_sized")
TARGETS = {  # market: (max DD over buy and hold's, Calmar over the best beaten rule's)
    "btc_1h": (0.45, 1.1),
    "btc_1d": (0.45, 1.1),
    "bnb_1d": (0.6, 1.0),
}


def variants() -> dict[str, ExperimentSpec]:
    sized = load_experiment(SPECS / "btc_1h_regime_allocation_sized.toml")
    assert sized.sizing is not None
    trailing = sized.sizing.model_copy(
        update={"forecast": "trailing", "model": None, "columns": ("%-realized_volatility_7_1d",)}
    )
    return {
        "allocation": load_experiment(SPECS / "btc_1h_regime_allocation.toml"),
        "sized: trailing": sized.model_copy(
            update={"name": f"{sized.name}_trailing", "sizing": trailing}
        ),
        "sized: model": sized,
    }


def measure(market: str, end: str, root: Path) -> tuple[str, dict[str, dict[str, float]]]:
    """The out-of-sample window, and the engine rows of each variant (and its
    simulation) and the rules, on one market."""
    rows: dict[str, dict[str, float]] = {}
    window = ""
    for label, spec in variants().items():
        result = run_market(market, spec, end, root / label.replace(": ", "_"))
        measured, window = result["rows"], str(result["window"])
        assert isinstance(measured, dict)
        rows[label] = measured["engine"]
        rows[f"{label} (sim)"] = measured["sim"]
        for rule in RULES:
            rows[rule] = measured[rule]
    return window, rows


def print_market(market: str, window: str, rows: dict[str, dict[str, float]]) -> None:
    _, pair, timeframe = MARKETS[market]
    print(f"\n{pair} {timeframe}: walk-forward {window} (out of sample), real engine, 0.1% fee")
    print("chg/yr: entries and exits a year on the engine; the sim also counts resizes")
    header = f"{'strategy':<24}{'return':>9}{'maxDD':>8}{'DD/BH':>7}{'Calmar':>8}{'chg/yr':>8}{'expo':>6}"
    print(header)
    print("-" * len(header))
    for name, m in rows.items():
        print(
            f"{name:<24}{m['total_return']:>+9.0%}{m['max_drawdown']:>8.1%}"
            f"{m['drawdown_vs_buy_hold']:>7.2f}{m['calmar']:>8.2f}"
            f"{m['changes_per_year']:>8.1f}{m['exposure']:>6.2f}"
        )


def targets(results: dict[str, dict[str, dict[str, float]]]) -> list[tuple[str, bool, str]]:
    checks: list[tuple[str, bool, str]] = []
    for market, rows in results.items():
        max_dd, calmar_ratio = TARGETS[market]
        sized = rows["sized: model"]
        best = max(BEATEN, key=lambda rule: rows[rule]["calmar"])
        needed = calmar_ratio * rows[best]["calmar"]
        checks += [
            (
                f"{market}: sized max DD <= {max_dd}x buy and hold's",
                sized["drawdown_vs_buy_hold"] <= max_dd,
                f"{sized['drawdown_vs_buy_hold']:.2f}x",
            ),
            (
                f"{market}: sized Calmar {'>=' if calmar_ratio > 1 else '>'} "
                f"{calmar_ratio:g}x the best of {', '.join(BEATEN)}",
                sized["calmar"] >= needed if calmar_ratio > 1 else sized["calmar"] > needed,
                f"{sized['calmar']:.2f} vs {best} {rows[best]['calmar']:.2f}",
            ),
        ]
    wins = [
        m
        for m, rows in results.items()
        if rows["sized: model"]["calmar"] > rows["sized: trailing"]["calmar"]
    ]
    checks.append(
        (
            "ML-sized beats trailing-sized (Calmar) on at least two markets",
            len(wins) >= 2,
            ", ".join(wins) or "none",
        )
    )
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--end", default="20210601", help="end of the data used (exclusive)")
    parser.add_argument("--markets", default=",".join(MARKETS))
    options = parser.parse_args()
    if not (SHARED / "binance-csv").is_dir():
        print(f"real market data not found at {SHARED}: nothing to measure")
        return 2
    results = {}
    with tempfile.TemporaryDirectory(prefix="sized-bench-") as tmp:
        for market in options.markets.split(","):
            window, results[market] = measure(market, options.end, Path(tmp))
            print_market(market, window, results[market])
    print_checks(targets(results), "sized allocation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
