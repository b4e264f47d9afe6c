"""Volatility forecasts walk-forward on every real market, against HAR-RV (issue 25).

For each market in ``../shared/data/binance-csv`` (BTC/USDT 1h, BTC/USDT daily,
BNB/USDT daily) the volatility spec (default ``experiments/specs/btc_1h_volatility.toml``)
is trained walk-forward through ``tradingbot train``'s own pipeline, unchanged but for
pair, timeframe, the horizon (one week: 168 hourly or 7 daily candles) and each model
kind asked for. Every forecast of the log volatility of the next week is scored on the
same out-of-sample candles as the classical ones: the trailing week, RiskMetrics EWMA
and HAR-RV. Printed: QLIKE (lower is better), its ratio to HAR-RV's, MSE of log
volatility, per market and model, and the issue's targets with PASS/FAIL.

The allocation sized by these forecasts, on the Freqtrade engine: ``bench/sized_allocation.py``.

    .venv/bin/python bench/risk_models.py [--models lightgbm,har,har_boost,hmm_lstm]
        [--markets btc_1h,btc_1d,bnb_1d]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.regime_strategy import MARKETS, SHARED, import_market  # noqa: E402
from common.context import RunContext  # noqa: E402
from experiments.spec import ExperimentSpec, load_experiment  # noqa: E402
from experiments.training import train  # noqa: E402
from features.feature_spec import ONE_CANDLE_KINDS, FeatureSpec, WindowedFeature  # noqa: E402
from features.timeframes import timeframe_to_seconds  # noqa: E402
from ml.tracking import default_tracking_uri  # noqa: E402

HORIZON_DAYS = 7
BASELINES = ("trailing", "ewma", "har_rv")


def in_candles(features: FeatureSpec, hours_per_candle: int) -> FeatureSpec:
    """The spec's feature windows (hourly candles) as the same spans in candles of
    ``hours_per_candle`` hours: 24, 168 and 720 hours are 1, 7 and 30 daily candles (at
    least the smallest window a kind allows; a window that repeats is dropped)."""
    if hours_per_candle == 1:
        return features
    converted = []
    for feature in features.features:
        if not isinstance(feature, WindowedFeature):
            converted.append(feature)
            continue
        smallest = 1 if feature.kind in ONE_CANDLE_KINDS else 2
        windows = sorted({max(smallest, round(w / hours_per_candle)) for w in feature.windows})
        converted.append(feature.model_copy(update={"windows": tuple(windows)}))
    return features.model_copy(update={"features": tuple(converted)})


# model variants by name: a kind and its parameters (a plain kind: the spec's own
# parameters when it is the spec's kind, else the kind's defaults)
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "har_boost": ("har", {"boost_rounds": 300}),
}


def market_spec(spec: ExperimentSpec, market: str, name: str) -> ExperimentSpec:
    """The spec on one market: its horizon (a week) and feature windows in that market's
    candles, and the model ``name`` (a kind, or one of :data:`VARIANTS`)."""
    kind, params = VARIANTS.get(name, (name, {}))
    _, pair, timeframe = MARKETS[market]
    hours = timeframe_to_seconds(timeframe) // 3600
    one = spec.with_overrides(pair=pair, timeframe=timeframe)
    one = one.with_params({"target.horizon": HORIZON_DAYS * 24 // hours})
    one = one.model_copy(update={"features": in_candles(one.feature_spec, hours)})
    if kind != one.model.kind or params:
        one = one.with_params({"model.kind": kind, "model.params": params})
    return one.model_copy(update={"name": f"{spec.name}__{market}__{name}"})


def run_market(
    spec: ExperimentSpec,
    market: str,
    kinds: list[str],
    root: Path,
) -> dict[str, dict[str, float]]:
    """Rows (each model kind and each classical forecast) of one market's losses."""
    userdir = import_market(market, root)
    rows: dict[str, dict[str, float]] = {}
    for kind in kinds:
        started = time.monotonic()
        trained = train(
            market_spec(spec, market, kind),
            context=RunContext(userdir, default_tracking_uri(userdir), os.environ),
        )
        rows[kind] = trained.metrics | {"seconds": time.monotonic() - started}
        for name in BASELINES:  # the same candles for every model kind: the same values
            rows[name] = trained.baselines[name]
    return rows


def print_market(market: str, rows: dict[str, dict[str, float]]) -> None:
    _, pair, timeframe = MARKETS[market]
    print(f"\n{pair} {timeframe}: log volatility of the next {HORIZON_DAYS} days, walk-forward")
    header = f"{'forecast':<12}{'QLIKE':>9}{'vs HAR-RV':>11}{'MSE log vol':>13}{'candles':>9}"
    print(header)
    print("-" * len(header))
    for name, m in rows.items():
        print(
            f"{name:<12}{m['qlike']:>9.4f}{m['qlike_vs_har_rv']:>10.3f}x"
            f"{m['mse_log_vol']:>13.4f}{m['rows']:>9,.0f}"
        )


def targets(
    results: dict[str, dict[str, dict[str, float]]], kinds: list[str]
) -> list[tuple[str, bool, str]]:
    """The issue's targets: the best ML model's QLIKE below HAR-RV's on BTC 1h and BNB
    1d, and not more than 2% above it on BTC 1d."""
    checks = []
    for market, limit, label in (
        ("btc_1h", 1.0, "below"),
        ("bnb_1d", 1.0, "below"),
        ("btc_1d", 1.02, "within 2% of"),
    ):
        if market not in results:
            continue
        rows = results[market]
        best = min(kinds, key=lambda k: rows[k]["qlike"])
        ratio = rows[best]["qlike_vs_har_rv"]
        passed = ratio < limit if limit == 1.0 else ratio <= limit
        checks.append((f"{market}: best ML QLIKE {label} HAR-RV's", passed, f"{best} {ratio:.3f}x"))
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--spec", type=Path, default=ROOT / "experiments/specs/btc_1h_volatility.toml"
    )
    parser.add_argument("--models", default="lightgbm", help="model kinds, comma-separated")
    parser.add_argument("--markets", default=",".join(MARKETS))
    args = parser.parse_args()
    if not (SHARED / "binance-csv").exists():
        sys.exit(f"real market data not found at {SHARED} (set TRADINGBOT_SHARED_DATA)")
    spec = load_experiment(args.spec)
    kinds = [k for k in args.models.split(",") if k]
    results = {}
    with tempfile.TemporaryDirectory(prefix="risk-bench-") as tmp:
        for market in args.markets.split(","):
            results[market] = run_market(spec, market, kinds, Path(tmp))
            print_market(market, results[market])
    print("\ntargets")
    checks = targets(results, kinds)
    for name, passed, value in checks:
        print(f"  {'PASS' if passed else 'FAIL'}  {name}: {value}")
    print(f"{sum(p for _, p, _ in checks)} of {len(checks)} targets met")


if __name__ == "__main__":
    main()
