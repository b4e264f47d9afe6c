"""Render library results for the terminal (rich). No logic beyond presentation."""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.table import Table

from features.data.quality import QualityReport
from features.frames import FeatureFrameMeta
from ml.metrics import MIN_ANNUALISED_DAYS


def _fmt_date(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else str(value)


def quality_report(console: Console, report: QualityReport, *, title: str) -> None:
    window = report.window
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("item", style="bold")
    table.add_column("value", overflow="fold")
    if report.source:
        table.add_row("source", f"{report.source} ({report.format})")
    table.add_row("rows read", f"{report.rows_read:,}")
    if len(report.exports) > 1:
        parts = [
            f"{e.convention}: {e.rows:,} rows {_fmt_date(e.first)} .. {_fmt_date(e.last)}"
            for e in report.exports
        ]
        table.add_row("exports", f"{len(report.exports)} concatenated\n" + "\n".join(parts))
        table.add_row(
            "overlap", f"{report.overlapping_timestamps:,} timestamps in more than one export"
        )
    if report.time_mismatch is not None:
        table.add_row("time columns", f"[yellow]{report.time_mismatch.message}[/]")
    dup = report.duplicates
    if dup.timestamps:
        table.add_row(
            "duplicates",
            f"{dup.timestamps:,} timestamps, {dup.rows_removed:,} rows removed (policy {dup.policy.value}); "
            f"{dup.conflicting:,} conflicting, largest relative price difference "
            f"{dup.max_relative_price_difference:.4%} at {_fmt_date(dup.worst)}",
        )
    gaps = report.gaps
    gap_text = "none"
    if gaps.count:
        gap_text = (
            f"{gaps.count} gaps, {gaps.missing_candles} missing candles, longest {gaps.longest} "
            f"missing ({gaps.longest_span} between candles)"
        )
    table.add_row("gaps", gap_text)
    table.add_row("bad ticks", _findings(report.bad_ticks))
    table.add_row("OHLC violations", _findings(report.invariant_violations))
    if report.repairs:
        table.add_row(
            "repairs",
            "\n".join(
                f"{_fmt_date(r.date)} {r.column}: {r.old:g} -> {r.new:g} ({r.reason})"
                for r in report.repairs
            ),
        )
    if report.filled_candles:
        table.add_row("filled", f"{len(report.filled_candles)} candles inserted (volume 0)")
    table.add_row(
        "window",
        f"{window.pair} {window.timeframe}: {_fmt_date(window.first)} .. {_fmt_date(window.last)}, "
        f"{window.rows:,} candles\nsha256 {window.sha256}",
    )
    console.print(table)


def _findings(findings: list) -> str:  # type: ignore[type-arg]
    if not findings:
        return "none"
    shown = [f"{_fmt_date(f.date)} {f.column}={f.value:g} ({f.reason})" for f in findings[:10]]
    more = f"\n... and {len(findings) - 10} more" if len(findings) > 10 else ""
    return f"[yellow]{len(findings)}[/]: " + "\n".join(shown) + more


def feature_summary(console: Console, meta: FeatureFrameMeta, *, out: str, cache_hit: bool) -> None:
    table = Table(title=f"features {meta.spec_hash}", show_header=False, title_justify="left")
    table.add_column("item", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("file", out)
    table.add_row("candles", f"{meta.window.rows:,} ({meta.window.pair} {meta.window.timeframe})")
    table.add_row("features", f"{len(meta.columns)}: " + ", ".join(meta.columns))
    table.add_row(
        "warm-up",
        f"{meta.warmup_rows} rows; first complete candle {_fmt_date(meta.first_valid)}"
        if meta.first_valid
        else f"[red]no complete row: fewer candles than the longest window ({meta.window.rows})[/]",
    )
    table.add_row(
        "cache", "hit (built before, read from cache)" if cache_hit else "miss (built now)"
    )
    console.print(table)


EVALUATION_COLUMNS = (
    ("total_return", "return", "{:+.0%}"),
    ("cagr", "CAGR", "{:+.0%}"),
    ("max_drawdown", "maxDD", "{:.0%}"),
    ("drawdown_vs_buy_hold", "DD/BH", "{:.2f}"),
    ("calmar", "Calmar", "{:.2f}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("changes_per_year", "chg/y", "{:.0f}"),
    ("exposure", "expo", "{:.2f}"),
)
EVALUATION_HEADERS = tuple(header for _, header, _ in EVALUATION_COLUMNS)
SHORT_WINDOW_NOTE = (
    f"- : CAGR, Sharpe, Sortino and Calmar are annualised; the window is shorter than "
    f"{MIN_ANNUALISED_DAYS:.0f} days, too short for them to mean anything"
)


def cell(value: float | None, form: str) -> str:
    """``value`` formatted, or ``-`` where it is missing or not finite (e.g. an
    annualised figure over a short window: see SHORT_WINDOW_NOTE)."""
    return "-" if value is None or not math.isfinite(value) else form.format(value)


def evaluation_cells(values: dict[str, float]) -> list[str]:
    """One row of the model-and-baselines table (``-`` where a value is missing)."""
    return [cell(values.get(key), form) for key, _, form in EVALUATION_COLUMNS]


def evaluation_table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    """A strategy (or model) and its baselines, one row each, in the evaluation columns."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 0, 0, 1),
        pad_edge=False,
    )
    table.add_column("strategy", no_wrap=True)
    for header in EVALUATION_HEADERS:
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    for name, values in rows.items():
        table.add_row(name, *evaluation_cells(values))
    if any(_too_short_to_annualise(values) for values in rows.values()):
        table.caption, table.caption_justify = SHORT_WINDOW_NOTE, "left"
    return table


RISK_COLUMNS = (
    ("qlike", "QLIKE", "{:.4f}"),
    ("qlike_vs_har_rv", "vs HAR-RV", "{:.3f}x"),
    ("mse_log_vol", "MSE log vol", "{:.4f}"),
    ("rows", "candles", "{:,.0f}"),
)


def risk_table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    """A volatility forecast and the classical ones: losses on the same candles (lower
    is better; ``vs HAR-RV`` below 1 beats HAR-RV)."""
    table = Table(
        title=f"{title}: forecast losses of the log volatility, lower is better",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    table.add_column("forecast", no_wrap=True)
    for _, header, _ in RISK_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    for name, values in rows.items():
        table.add_row(name, *(cell(values.get(key), form) for key, _, form in RISK_COLUMNS))
    return table


def _too_short_to_annualise(values: dict[str, float]) -> bool:
    """A row with a return but no Calmar (NaN, or not recorded): its window is too short."""
    calmar = values.get("calmar")
    return "total_return" in values and (calmar is None or not math.isfinite(calmar))


def train_summary(console: Console, result: object, tracking_uri: str) -> None:
    from experiments.training import TrainResult

    assert isinstance(result, TrainResult)
    title = (
        f"{result.model_name}: walk-forward, {result.folds} folds (out-of-sample), "
        "after fees, beside the baselines"
    )
    if "qlike" in result.metrics:
        console.print(risk_table(title, {"model": result.metrics, **result.baselines}))
    elif result.per_pair:
        console.print(evaluation_table(title + "; one pooled model, per pair", _pair_rows(result)))
        mean = f"mean of {len(result.per_pair)} pairs"
        rows = {f"model ({mean})": result.metrics}
        rows |= {f"{name} ({mean})": values for name, values in result.baselines.items()}
        console.print(
            evaluation_table(
                "the pairs' figures averaged, column by column: not one portfolio's", rows
            )
        )
    else:
        console.print(evaluation_table(title, {"model": result.metrics, **result.baselines}))
    extra = {
        k: v
        for k, v in result.metrics.items()
        if k in ("accuracy", "log_loss", "brier", "rmse", "rank_ic")
    }
    if extra:
        console.print("  " + ", ".join(f"{k} {v:.4f}" for k, v in extra.items()))
    for warning in result.warnings:
        console.print(f"[yellow]warning: {warning}[/]")
    console.print(
        f"MLflow run {result.run_id} (experiment {result.experiment_id}) in {tracking_uri}"
    )
    console.print(f"registered models:/{result.model_name}/{result.version} with alias @challenger")
    console.print(
        f"promote: tradingbot promote {result.model_name} --version {result.version} --reason '...'"
    )


def _pair_rows(result: object) -> dict[str, dict[str, float]]:
    """Each pair's model, buy and hold and trend rule rows of a pooled training."""
    from experiments.training import TrainResult

    assert isinstance(result, TrainResult)
    rows: dict[str, dict[str, float]] = {}
    for pair, scores in result.per_pair.items():
        rows[f"{pair} model"] = scores.metrics
        for name in ("always_long", "sma50_daily", "momentum_30d"):
            if name in scores.baselines:
                rows[f"{pair} {name}"] = scores.baselines[name]
    return rows


def whitelist_summary(console: Console, result: object, tracking_uri: str) -> None:
    """One row per pair: the model's walk-forward measures beside buy and hold."""
    from experiments.training import WhitelistResult

    assert isinstance(result, WhitelistResult)
    table = Table(
        title=f"{result.spec_name}: one model per pair, walk-forward (out of sample), after fees",
        title_justify="left",
    )
    for column in ("model", "return", "max DD", "Calmar", "B&H return", "B&H max DD"):
        table.add_column(column, justify="left" if column == "model" else "right", overflow="fold")
    for trained in result.pairs.values():
        hold = trained.baselines.get("always_long", {})
        table.add_row(
            f"{trained.model_name} v{trained.version}",
            _pct(trained.metrics.get("total_return")),
            _pct(trained.metrics.get("max_drawdown")),
            _num(trained.metrics.get("calmar")),
            _pct(hold.get("total_return")),
            _pct(hold.get("max_drawdown")),
        )
    console.print(table)
    console.print(
        f"MLflow parent run {result.run_id} (experiment {result.experiment_id}) in {tracking_uri}"
    )
    console.print("registered each pair's model with alias @challenger")
    console.print(
        f"promote them all: tradingbot promote {result.spec_name} --reason '...' "
        "(or one: tradingbot promote <model> --version N --reason '...')"
    )


def _pct(value: float | None) -> str:
    return cell(value, "{:.1%}")


def _num(value: float | None) -> str:
    return cell(value, "{:.2f}")


def regime_summary(console: Console, summary: object) -> None:
    from experiments.training.regimes import RegimeSummary

    assert isinstance(summary, RegimeSummary)
    table = Table(
        title=f"regimes (fitted on {summary.train_rows:,} candles before {_fmt_date(summary.train_end)})",
        title_justify="left",
    )
    for column in ("regime", "mean return / candle", "volatility / candle", "share of candles"):
        table.add_column(column, justify="right" if column != "regime" else "left")
    for label, mean, std in zip(
        summary.labels, summary.return_means, summary.return_stds, strict=True
    ):
        table.add_row(label, f"{mean:+.4%}", f"{std:.4%}", f"{summary.share.get(label, 0.0):.1%}")
    console.print(table)
    console.print(
        f"switches per 1,000 candles: {summary.switches_train:.1f} in training, {summary.switches_after:.1f} after"
    )
    if len(summary.bic) > 1:
        console.print(
            "BIC: " + ", ".join(f"{k} states {v:,.0f}" for k, v in sorted(summary.bic.items()))
        )
    console.print(f"wrote {summary.out}\nwrote {summary.plot}")


def tune_summary(console: Console, result: object, tracking_uri: str) -> None:
    from experiments.tuning.liveness import STALE_AFTER_S
    from experiments.tuning.request import TuneResult

    assert isinstance(result, TuneResult)
    console.print(
        f"study {result.study} in {result.storage}: {result.complete} complete, "
        f"{result.pruned} pruned, {result.failed} failed of {result.trials} "
        f"({result.fits} model fits)"
    )
    if not result.finished:
        if result.running_elsewhere:
            console.print(
                "still running elsewhere: " + "; ".join(result.running_elsewhere) + ". Run the "
                "same command again when they are done to finish the study (a trial whose "
                f"worker died is reclaimed {STALE_AFTER_S / 60:g} minutes after its last heartbeat)"
            )
        else:
            console.print(
                "time is up before the study reached its trials: "
                "run the same command again to continue"
            )
        return
    if result.finalising_elsewhere is not None:
        console.print(
            "the study is finished; its best trial is being refitted and registered by "
            f"{result.finalising_elsewhere}: its MLflow parent run {result.parent_run_id} "
            "will show the registered version"
        )
        return
    table = Table(title=f"best trial {result.best_trial}", title_justify="left")
    table.add_column("metric")
    table.add_column("validation (walk-forward)", justify="right")
    table.add_column("test (scored once)", justify="right")
    for name in sorted(set(result.validation) | set(result.test)):
        table.add_row(
            name,
            f"{result.validation.get(name, float('nan')):.4f}",
            f"{result.test.get(name, float('nan')):.4f}",
        )
    console.print(table)
    console.print("  " + ", ".join(f"{k} = {v}" for k, v in result.best_params.items()))
    console.print(f"MLflow parent run {result.parent_run_id} in {tracking_uri}")
    uri = f"models:/{result.model_name}/{result.version}"
    if result.gate is None or result.gate.passed:
        console.print(f"registered {uri} with alias @challenger")
    else:
        console.print(
            f"registered {uri} WITHOUT alias @challenger, and no parameter file written: "
            f"{result.gate.reason}. Its values are in the run's strategy/ artefacts. To "
            "apply it on purpose: the same tune command with --force REASON"
        )
    if result.gate is not None and result.gate.passed:
        console.print(f"promotion gate {result.gate.verdict}")
    if result.params_file is not None:
        console.print(f"strategy parameters written to {result.params_file}")


def scorecard_summary(console: Console, card: object) -> None:
    from experiments.backtesting.scorecard import (
        BEATEN_RULES,
        BEATS_MARGIN,
        ROWS,
        Scorecard,
        verdict,
    )

    assert isinstance(card, Scorecard)
    for market in card.markets:
        title = (
            f"{market.pair} {market.timeframe}  {market.window}  ({market.model}, "
            "walk-forward on the Freqtrade engine, marked to market, after fees)"
        )
        table = evaluation_table(title, {name: market.rows[name] for name in ROWS})
        console.print(table)
    summary = Table(title="scorecard: Calmar and drawdown vs buy and hold", title_justify="left")
    columns = ("market", "strategy", "buy&hold", "SMA50", "mom30", "SMA50 sized", "DD/BH")
    for column in (*columns, "beats rules"):
        summary.add_column(column, justify="left" if column == "market" else "right")
    for market in card.markets:
        rows = market.rows
        best = max(rows[name]["calmar"] for name in BEATEN_RULES)
        summary.add_row(
            f"{market.pair} {market.timeframe}",
            *(
                _num(rows[name]["calmar"])
                for name in (
                    "strategy",
                    "always_long",
                    "sma50_daily",
                    "momentum_30d",
                    "sma50_sized",
                )
            ),
            _num(rows["strategy"]["drawdown_vs_buy_hold"]),
            verdict(rows["strategy"]["calmar"], best),
        )
    console.print(summary)
    console.print(
        f"  beats rules: Calmar at least {BEATS_MARGIN:.1f}x the best of SMA50, 30-day "
        "momentum and SMA50 sized by risk; within that, a tie"
    )
    console.print(f"MLflow run {card.run_id} (experiment scorecards)")
