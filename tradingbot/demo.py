"""`make demo`: the main job on embedded defaults.

Stages: data (the real BTC/USDT 1h export when ``../shared/data`` is there, else
a seeded synthetic regime-switching market, and it says which) -> quality report
-> causal features -> walk-forward training, on the first 70% of the candles and
recorded in MLflow, of the regime allocation spec (jump models on slow-clock
features, regime-gated trend), sized by a forecast of next week's volatility (HAR-RV boosted by LightGBM)
and unsized, next to an HMM-LSTM and a LightGBM direction forecaster -> promotion of
the best walk-forward Calmar after fees to ``champion`` (the direction forecasters
contend only when they beat buy and hold) -> a backtest
of the champion with its strategy on the real Freqtrade engine, offline, over the
remaining 30% -> the report (Markdown and a self-contained HTML page: equity
against buy and hold and the SMA50 rule, regimes over price, per-regime table).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from common.atomic import scratch_dir
from common.context import RunContext
from common.layout import UserDir
from experiments.backtesting.run import backtest
from experiments.reporting.report import build_report
from experiments.spec import SHIPPED_SPECS, ExperimentSpec, load_experiment, parse_experiment
from experiments.spec_data import build_features
from experiments.training import TrainResult, train
from features.data import ImportOptions, import_candles, load_candles
from features.data.importer import ImportResult
from features.data.synthetic import generate
from features.feature_spec import default_spec
from features.frames import write_feature_file
from ml import tracking
from ml.registry import check_promotion, promote
from tradingbot.render import feature_summary, quality_report, train_summary
from tradingbot.render_backtest import backtest_summary

DEMO_PAIR = "BTC/USDT"
DEMO_TIMEFRAME = "1h"
DEMO_EXCHANGE = "binance"
REAL_FILE = Path("binance-csv") / "Binance_BTCUSDT_1h.csv.gz"
SYNTHETIC_CANDLES = 24 * 365
SYNTHETIC_SEED = 7
STAGES = 6
TRAIN_SHARE = 0.7  # models see the first 70% of the candles; the backtest the rest

# Embedded demo specs: the example specs' models, sized to run in a few minutes on 2 cores.
DEMO_SPECS: dict[str, dict[str, object]] = {
    "demo_btc_1h_hmm_lstm": {
        "model": {
            "kind": "hmm_lstm",
            "params": {"sequence_length": 24, "hidden_size": 24, "max_epochs": 4, "patience": 2},
        },
    },
    "demo_btc_1h_lightgbm": {
        "model": {"kind": "lightgbm", "params": {"n_estimators": 300, "min_child_samples": 200}},
    },
}


REGIME_ALLOCATION_SPEC = SHIPPED_SPECS / "btc_1h_regime_allocation.toml"
SIZED_ALLOCATION_SPEC = SHIPPED_SPECS / "btc_1h_regime_allocation_sized.toml"
STRATEGIES = {"regime_allocation": "RegimeAllocationStrategy"}  # others: RegimeStrategy


def regime_allocation_spec(
    train_timerange: str, train_days: float, shipped_spec: Path = REGIME_ALLOCATION_SPEC
) -> ExperimentSpec:
    """A shipped regime allocation spec (unsized or sized) on the demo's training window:
    four folds over its last 40%, anchored at its end (the shipped calendar start may
    lie outside a synthetic market)."""
    shipped = load_experiment(shipped_spec)
    data = shipped.model_dump(mode="json", exclude={"tune"})
    data["name"] = f"demo_{shipped.name}"
    data["data"] = {**data["data"], "timerange": train_timerange}
    data["walk_forward"] = {"scheme": "expanding", "folds": 4, "test_days": train_days * 0.4 / 4}
    return parse_experiment(data, source=f"demo spec from {shipped_spec.name}")


def demo_specs(train_timerange: str) -> list[ExperimentSpec]:
    return [
        parse_experiment(
            {
                "name": name,
                "seed": 42,
                "data": {
                    "pair": DEMO_PAIR,
                    "timeframe": DEMO_TIMEFRAME,
                    "exchange": DEMO_EXCHANGE,
                    "timerange": train_timerange,
                },
                "regime": {"n_states": 3, "n_restarts": 2},
                "walk_forward": {"scheme": "expanding", "folds": 3},
                **body,
            },
            source=f"demo spec {name}",
        )
        for name, body in DEMO_SPECS.items()
    ]


def _heading(console: Console, text: str) -> None:
    console.rule()
    console.print(f"[bold]{text}[/]")


def run_demo(console: Console, *, context: RunContext, shared_data: Path) -> None:
    """The main job, stage by stage: data, features, training, promotion, backtest, report."""
    userdir, layout, tracking_uri = context.userdir, context.layout, context.tracking_uri
    _import_data(console, layout, shared_data / REAL_FILE)
    _features(console, layout)
    candles = load_candles(layout, DEMO_EXCHANGE, DEMO_PAIR, DEMO_TIMEFRAME)
    cutoff = candles["date"].iloc[int(len(candles) * TRAIN_SHARE)].floor("D")
    end = candles["date"].iloc[-1].floor("D") + pd.Timedelta(days=1)
    train_days = (cutoff - candles["date"].iloc[0]).total_seconds() / 86_400
    specs = [
        regime_allocation_spec(f"-{cutoff:%Y%m%d}", train_days, shipped)
        for shipped in (SIZED_ALLOCATION_SPEC, REGIME_ALLOCATION_SPEC)
    ]
    specs += demo_specs(f"-{cutoff:%Y%m%d}")
    results = _train_all(console, specs, cutoff, context)
    best = _promote_best(console, results, context)
    timerange = f"{cutoff:%Y%m%d}-{end:%Y%m%d}"
    _heading(
        console,
        f"5/{STAGES} backtest: {best.model_name}@champion on the real Freqtrade engine, "
        f"offline, {timerange} (after its training window)",
    )
    kinds = {spec.name: spec.model.kind for spec in specs}
    summary = backtest(
        strategy=STRATEGIES.get(kinds[best.model_name], "RegimeStrategy"),
        pair=DEMO_PAIR,
        timeframe=DEMO_TIMEFRAME,
        exchange=DEMO_EXCHANGE,
        timerange=timerange,
        model=f"{best.model_name}@champion",
        context=context,
    )
    backtest_summary(console, summary)
    _heading(console, f"6/{STAGES} report: leaderboards, equity vs buy-and-hold, drawdown, regimes")
    report = build_report(layout, tracking_uri)
    console.print(f"wrote {report.markdown}\nwrote {report.html} (open it in a browser)")
    console.print(
        f"\nOpen the MLflow UI: .venv/bin/tradingbot ui --userdir {userdir}  (then http://127.0.0.1:5000)"
    )


def _import_data(console: Console, layout: UserDir, real: Path) -> None:
    """Stage 1: the real candles when ../shared has them, else a seeded synthetic market."""

    def load(source: Path) -> ImportResult:
        return import_candles(
            source,
            pair=DEMO_PAIR,
            timeframe=DEMO_TIMEFRAME,
            exchange=DEMO_EXCHANGE,
            layout=layout,
            options=ImportOptions(repair=True),
        )

    if real.exists():
        _heading(console, f"1/{STAGES} data: real Binance {DEMO_PAIR} {DEMO_TIMEFRAME} from {real}")
        result = load(real)
    else:
        _heading(
            console,
            f"1/{STAGES} data: {real} not found, using a seeded synthetic regime-switching market "
            f"({SYNTHETIC_CANDLES:,} candles, seed {SYNTHETIC_SEED})",
        )
        candles, _ = generate(SYNTHETIC_CANDLES, seed=SYNTHETIC_SEED)
        with scratch_dir("demo") as tmp:
            source = Path(tmp) / "synthetic_BTC_USDT-1h.feather"
            candles.to_feather(source)
            result = load(source)
    quality_report(console, result.report, title="import report")
    console.print(f"candles: {result.candles_path}")


def _features(console: Console, layout: UserDir) -> None:
    """Stage 2: the default causal feature set, written as parquet."""
    _heading(console, f"2/{STAGES} features: default causal feature set")
    spec = default_spec()
    built = build_features(
        pair=DEMO_PAIR, timeframe=DEMO_TIMEFRAME, exchange=DEMO_EXCHANGE, layout=layout, spec=spec
    )
    out = layout.root / "features" / f"BTC_USDT-{DEMO_TIMEFRAME}-{spec.hash}.parquet"
    write_feature_file(built.frame, built.meta, out)
    feature_summary(console, built.meta, out=str(out), cache_hit=built.cache_hit)


def _train_all(
    console: Console,
    specs: list[ExperimentSpec],
    cutoff: pd.Timestamp,
    context: RunContext,
) -> list[TrainResult]:
    """Stage 3: every demo model, walk-forward, recorded in MLflow."""
    _heading(
        console,
        f"3/{STAGES} training: regime allocation (sized by forecast risk, and unsized), "
        "HMM-LSTM and LightGBM, walk-forward, recorded in MLflow",
    )
    console.print(f"models train on candles before {cutoff:%Y-%m-%d}; the backtest runs after it")
    results: list[TrainResult] = []
    for experiment in specs:
        console.print(f"training {experiment.name} ({experiment.model.kind}) ...")
        trained = train(
            experiment,
            context=context,
            progress=lambda text: console.print(f"  {text}"),
        )
        train_summary(console, trained, context.tracking_uri)
        results.append(trained)
    return results


def _promote_best(console: Console, results: list[TrainResult], context: RunContext) -> TrainResult:
    """Stage 4: the best walk-forward Calmar after fees becomes champion, with the reason
    (beside buy and hold and the trend rules) recorded. The contenders are the regime
    allocations, and a direction forecaster only when its walk-forward beat buy and
    hold's Calmar (they are research specs: their tables show why they lose)."""
    _heading(
        console, f"4/{STAGES} promotion: the best walk-forward Calmar after fees becomes champion"
    )
    contenders = [r for r in results if _contends(r)]
    left_out = [r.model_name for r in results if not _contends(r)]
    if left_out:
        console.print(
            f"not contenders: {', '.join(left_out)} (direction forecasts whose walk-forward "
            "did not beat buy and hold's Calmar)"
        )
    best = max(contenders, key=lambda r: _calmar(r.metrics))
    others = ", ".join(f"{r.model_name} {_calmar(r.metrics):.2f}" for r in results if r is not best)
    rules = {name: best.baselines[name]["calmar"] for name in ("sma50_daily", "momentum_30d")}
    reason = (
        f"demo: best walk-forward Calmar after fees ({best.metrics['calmar']:.2f}; {others}); "
        f"buy and hold {best.baselines['always_long']['calmar']:.2f}, "
        + ", ".join(f"{name} {value:.2f}" for name, value in rules.items())
    )
    client = tracking.configure(context.tracking_uri, context.layout)
    _, gate = check_promotion(client, best.model_name, best.version, force=True)
    if not gate.passed:  # the demo goes on with the best it has, saying so
        console.print(f"[yellow]note: the promotion gate refuses it ({gate.reason}); forced.[/]")
        reason = f"demo, forced past the buy-and-hold gate so the demo can go on: {reason}"
    promote(client, best.model_name, best.version, reason, user="make demo", force=True)
    console.print(f"models:/{best.model_name}@champion -> version {best.version}: {reason}")
    if best.metrics["calmar"] < max(rules.values()):
        console.print(
            "[yellow]note: the champion does not beat the simple trend rules on Calmar on this "
            "data; it is only the best of the models.[/]"
        )
    return best


def _calmar(metrics: dict[str, float]) -> float:
    value = metrics.get("calmar", float("nan"))
    return value if value == value else float("-inf")  # NaN (a short window) ranks last


def _contends(result: TrainResult) -> bool:
    """A regime allocation always; a direction forecaster only past buy and hold."""
    if result.model_name.startswith("demo_btc_1h_regime_allocation"):
        return True
    return _calmar(result.metrics) > _calmar(result.baselines["always_long"])
