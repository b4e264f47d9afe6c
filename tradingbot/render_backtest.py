"""Render a backtest and a paper replay for the terminal (rich). No logic beyond presentation."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from ml.metrics import long_enough_to_annualise
from tradingbot.render import SHORT_WINDOW_NOTE, cell, evaluation_table


def backtest_summary(console: Console, summary: object) -> None:
    from experiments.backtesting.run import BacktestSummary

    assert isinstance(summary, BacktestSummary)
    console.print(_metrics_table(summary.metrics))
    title = (
        "marked to market at every close (drawdowns inside open trades count), beside the "
        "baselines on the same candles and fee; expo: mean share of equity held"
    )
    if not summary.per_pair.empty:
        title += f"; baselines hold {len(summary.per_pair)} pairs in equal shares"
    console.print(evaluation_table(title, summary.comparison))
    if not summary.per_pair.empty:
        console.print(_pairs_table(summary.per_pair))
    if not summary.per_regime.empty:
        console.print(_regimes_table(summary.per_regime))
    _guard_notes(console, summary.guard, summary.compared_from)
    if summary.live:
        console.print(_live_table(summary.live))
    console.print(
        f"strategy parameters: {summary.params_file} (tuned values)"
        if summary.params_file is not None
        else "strategy parameters: the strategy's defaults (no tuned parameter file)"
    )
    console.print(
        f"MLflow run {summary.run_id} (experiment backtests); result {summary.result_zip}"
        + (" (cached)" if summary.cache_hit else "")
    )
    if summary.journalled is not None:
        done = summary.journalled
        console.print(
            f"journal: {done.added} positions added, {done.unchanged} already there "
            f"(tradingbot journal list --bot {done.bot})"
        )


def _live_table(compared: list[Any]) -> Table:
    table = Table(
        title="what the bot served against what its recorded versions predict from the "
        "user dir's candles (the same candles)",
        title_justify="left",
    )
    for column in ("pair", "recorded", "compared", "differing", "max |diff|", "first differences"):
        table.add_column(column, overflow="fold")
    for c in compared:
        shown = "; ".join(f"{d}: {a} vs {b}" for d, a, b in c.first_differences) or "-"
        if c.not_compared:
            shown += f" (not compared: {c.not_compared})"
        table.add_row(
            c.pair,
            str(c.recorded),
            str(c.compared),
            str(c.differing),
            f"{c.max_abs_difference:.3g}",
            shown,
        )
    return table


def _metrics_table(m: Any) -> Table:
    table = Table(
        title=f"Freqtrade backtest {m.start:%Y-%m-%d} .. {m.end:%Y-%m-%d}: Freqtrade's own "
        "figures, from closed trades (the balance moves only when a trade closes)",
        show_header=False,
        title_justify="left",
    )
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    rows = [
        ("trades", f"{m.trades}"),
        ("profit total", f"{m.profit_total:+.2%}"),
        ("market change (Freqtrade: first to last close, no fee)", f"{m.market_change:+.2%}"),
        ("CAGR (closed trades)", cell(m.cagr, "{:+.2%}")),
        ("Sharpe (per-trade returns)", cell(m.sharpe_trades, "{:.2f}")),
        ("Sharpe (daily wallet balance)", cell(m.sharpe_wallet, "{:.2f}")),
        ("Sortino (closed trades)", cell(m.sortino, "{:.2f}")),
        ("max drawdown (closed trades, account)", f"{m.max_drawdown_account:.2%}"),
        ("winrate / profit factor", f"{m.winrate:.1%} / {m.profit_factor:.2f}"),
        ("expectancy", f"{m.expectancy:.4f}"),
        ("exposure (share of time in a trade)", f"{m.exposure:.1%}"),
        ("average trade", f"{m.avg_trade_duration_s / 3600:.1f} h"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    figures = (m.cagr, m.sharpe_trades, m.sharpe_wallet, m.sortino)
    if not all(math.isfinite(value) for value in figures):
        short = not long_enough_to_annualise((m.end - m.start).total_seconds() / 86_400)
        table.caption = (
            SHORT_WINDOW_NOTE
            if short
            else "- : Freqtrade could not compute it (no closed trade, or no variation)"
        )
        table.caption_justify = "left"
    return table


def _pairs_table(per_pair: Any) -> Table:
    pairs = Table(title="by pair", title_justify="left")
    for column in ("pair", "trades", "profit", "mean trade", "winrate", "buy and hold"):
        pairs.add_column(column, justify="left" if column == "pair" else "right")
    for row in per_pair.itertuples(index=False):
        pairs.add_row(
            str(row.pair),
            f"{row.trades:.0f}",
            f"{row.profit_total_abs:.2f}",
            f"{row.profit_mean:+.2%}",
            f"{row.winrate:.0%}",
            f"{row.buy_and_hold:+.1%}",
        )
    return pairs


def _regimes_table(per_regime: Any) -> Table:
    regimes = Table(title="by regime at entry", title_justify="left")
    for column in per_regime.columns:
        regimes.add_column(column, justify="left" if column == "regime" else "right")
    for row in per_regime.itertuples(index=False):
        regimes.add_row(
            str(row.regime),
            f"{row.trades}",
            f"{row.profit_total_abs:.2f}",
            f"{row.profit_mean:+.3%}",
            f"{row.winrate:.1%}",
        )
    return regimes


def _guard_notes(console: Console, guard: dict[str, Any], compared_from: Any) -> None:
    excluded = dict(guard.get("in_training_window", {}))
    if any(excluded.values()):
        console.print(
            f"[bold red]lookahead guard: {sum(excluded.values())} candles inside the model's training window were not traded[/]"
        )
    dissimilar = dict(guard.get("dissimilar", {}))
    if any(dissimilar.values()):
        console.print(
            f"[yellow]dissimilarity: {sum(dissimilar.values())} candles unlike the model's "
            "training data (DI above the spec's threshold) were not traded[/]"
        )
    if compared_from is not None:
        console.print(
            f"[bold red]the comparison with buy and hold and the trend rules starts at "
            f"{compared_from:%Y-%m-%d %H:%M} UTC, after the model's training window; "
            f"Freqtrade's market change covers the whole timerange[/]"
        )


def replay_summary(console: Console, result: object, summary: object, compared: object) -> None:
    """The replay's trades, and how they compare with a backtest of the same candles."""
    from experiments.backtesting.run import BacktestSummary
    from strategies.paper_replay import ReplayResult
    from strategies.replay_comparison import TradeComparison

    assert isinstance(result, ReplayResult) and isinstance(summary, BacktestSummary)
    assert isinstance(compared, TradeComparison)
    table = Table(
        title=f"paper trades on the replayed market ({result.steps} candles, "
        f"{result.wall_seconds:.1f} s; database {result.database})",
        title_justify="left",
    )
    numeric = ("price", "profit", "profit (stake)")
    for column in ("pair", "entry", "price", "exit", "price", "reason", "profit", "profit (stake)"):
        table.add_column(column, justify="right" if column in numeric else "left")
    trades = result.trades
    for row in trades.itertuples(index=False):
        table.add_row(
            str(row.pair),
            f"{row.open_date:%Y-%m-%d %H:%M}",
            f"{row.open_rate:.6g}",
            "open" if row.is_open else f"{row.close_date:%Y-%m-%d %H:%M}",
            "" if row.is_open else f"{row.close_rate:.6g}",
            str(row.exit_reason),
            "" if row.is_open else f"{row.profit_ratio:+.2%}",
            "" if row.is_open else f"{row.profit_abs:+.2f}",
        )
    closed = trades[~trades["is_open"]]
    still_open = len(trades) - len(closed)
    table.add_section()
    table.add_row(
        "total",
        f"{len(trades)} trades",
        "",
        f"{still_open} open" if still_open else "",
        "",
        "closed trades, after fees",
        "",
        f"{closed['profit_abs'].sum():+.2f}",
    )
    console.print(table)
    matched = compared.matched
    exits = matched["exit_candle_diff"].dropna()
    console.print(
        f"against the backtest of the same candles (MLflow run {summary.run_id}): "
        f"{len(matched)} trades in both, {len(compared.replay_only)} only in the replay, "
        f"{len(compared.backtest_only)} only in the backtest ({compared.share_matched:.0%} matched)"
    )
    if len(matched):
        console.print(
            f"  entry prices differ by at most {matched['entry_price_diff'].abs().max():.3%}; "
            f"{int((exits == 0).sum())} of {len(exits)} exits in the same candle "
            "(the rest: exits a backtest takes inside a candle, at its high or low)"
        )
    if len(compared.replay_only) or len(compared.backtest_only):
        explained = (
            len(compared.replay_only) + len(compared.backtest_only) - len(compared.unexplained)
        )
        console.print(
            f"  {max(explained, 0)} trade(s) in only one run follow an exit the other took "
            "in another candle (intra-candle fills)"
        )
    if len(compared.unexplained):
        console.print(
            f"[bold red]{len(compared.unexplained)} difference(s) intra-candle fills do not "
            "explain: a bug, please report it[/]"
        )
    else:
        console.print("[green]no difference beyond intra-candle fills[/]")
