"""`tradingbot report`: what the user dir's MLflow store says, as Markdown and one HTML page.

* a leaderboard of registered models (aliases, walk-forward metrics) and of backtests;
* for the latest backtest: the equity curve (valued at every close, log axis) against
  buy and hold and the daily SMA50 rule on the same candles and fee, the drawdown,
  performance by the regime at entry, and the model's regimes over the backtest
  window with the trades marked; a flag when the lookahead guard withheld candles.

Ratios are printed as percentages (returns, drawdowns), plain (Calmar, Sharpe) or
as multiples (drawdown against buy and hold); the tables fit a 1,400 px page.

The HTML page embeds its pictures (base64), so it is one self-contained file. The
PNGs are also logged to the backtest's MLflow run under ``report/``.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from common.atomic import scratch_dir, write_text_atomic
from common.errors import TradingbotError
from common.layout import UserDir
from experiments.reporting.journal import Section, journal_sections
from experiments.reporting.training_plots import training_regime_plots
from features.data import load_candles
from ml import tracking
from ml.baselines import trend_positions
from ml.evaluation import evaluation_of, metric
from ml.metrics import equity_of
from ml.plots import drawdown_plot, equity_plot, regime_plot
from ml.serving.served import served_regimes
from ml.tracking import PURPOSE_TAG
from strategies.equity import equity_curve
from strategies.results import parse_result_zip

# (metric, header, format): "pct" 12.3%, "ratio" 1.23, "times" 0.50x, "count" 12.
Column = tuple[str, str, str]
MODEL_COLUMNS: tuple[Column, ...] = (
    ("total_return", "return", "pct"),
    ("calmar", "Calmar", "ratio"),
    ("sharpe", "Sharpe", "ratio"),
    ("max_drawdown", "max DD", "pct"),
    ("drawdown_vs_buy_hold", "DD vs B&H", "times"),
    ("changes_per_year", "changes/yr", "count"),
    ("accuracy", "accuracy", "pct"),
)
# "(mtm)": marked to market at every close; Freqtrade's closed-trade figures say so too
BACKTEST_COLUMNS: tuple[Column, ...] = (
    ("closed.profit_total", "profit (closed trades)", "pct"),
    ("baseline.always_long.total_return", "B&H", "pct"),
    ("mtm.cagr", "CAGR (mtm)", "pct"),
    ("mtm.calmar", "Calmar (mtm)", "ratio"),
    ("mtm.max_drawdown", "max DD (mtm)", "pct"),
    ("mtm.drawdown_vs_buy_hold", "DD vs B&H (mtm)", "times"),
    ("baseline.sma50_daily.calmar", "SMA50 Calmar", "ratio"),
    ("mtm.sharpe", "Sharpe (mtm)", "ratio"),
    ("closed.trades", "trades", "count"),
)
FORMATS = {
    "pct": "{:.1%}",
    "ratio": "{:.2f}",
    "times": "{:.2f}x",
    "count": "{:,.0f}",
    "money": "{:,.2f}",
}


RUN_ID_SHOWN = 8  # characters of a backtest's run id in the table; report --backtest takes them


class ReportError(TradingbotError):
    """Nothing to report on."""


@dataclass(frozen=True)
class Report:
    markdown: Path
    html: Path
    images: list[Path]


def model_leaderboard(client: MlflowClient) -> pd.DataFrame:
    """One row per registered version, grouped by market (pair and timeframe) and by the
    evaluation its run logged (column ``evaluated``: figures of different windows are
    not comparable), best Calmar first in each group; the ``window`` is the candles the
    run trained and evaluated on. NaN where the evaluation has no such figure. The
    models a scorecard registered per market are left out (experiment ``scorecards``)."""
    rows = []
    for model in client.search_registered_models():
        if (model.tags or {}).get(PURPOSE_TAG) == "scorecard":
            continue  # one per market of a scorecard: its run in experiment scorecards has them
        for version in client.search_model_versions(f"name = '{model.name}'"):
            run = client.get_run(version.run_id) if version.run_id else None
            metrics = run.data.metrics if run is not None else {}
            tags = run.data.tags if run is not None else {}
            evaluation = evaluation_of(metrics)
            prefix, label = (evaluation[0], evaluation[1]) if evaluation else ("", "none")
            aliases = sorted(
                a for a, v in (model.aliases or {}).items() if str(v) == str(version.version)
            )
            row: dict[str, object] = {
                "market": _market(tags),
                "model": model.name,
                "version": int(version.version),
                "aliases": ", ".join(aliases),
                "evaluated": label,
                "window": _window(tags),
            }
            for key, header, _ in MODEL_COLUMNS:
                value = metric(metrics, prefix, key) if evaluation else None
                row[header] = np.nan if value is None else value
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    order = ["market", "evaluated", "Calmar"]
    ranked = table.sort_values(order, ascending=[True, True, False], na_position="last")
    return ranked.reset_index(drop=True)


def _window(tags: dict[str, str]) -> str:
    """``2018-01-01..2021-06-01``: a training run's data window (its tags)."""
    first, last = tags.get("data.first"), tags.get("data.last")
    if not (first and last):
        return ""
    return f"{pd.Timestamp(first):%Y-%m-%d}..{pd.Timestamp(last):%Y-%m-%d}"


def backtest_leaderboard(client: MlflowClient) -> tuple[pd.DataFrame, list[mlflow.entities.Run]]:
    """Finished backtests grouped by market (newest first in each), and the runs newest
    first. ``guard`` names candles the lookahead guard withheld; the B&H, CAGR and Calmar
    columns then cover only the candles after the model's training window (Freqtrade's
    market change would cover them all). ``purpose`` marks the backtests a paper replay
    ran to compare with."""
    experiment = client.get_experiment_by_name("backtests")
    runs = (
        []
        if experiment is None
        else client.search_runs(
            [experiment.experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
        )
    )
    rows = []
    for r in runs:
        excluded = r.data.metrics.get("guard.excluded_candles", 0.0)
        rows.append(
            {
                "run": r.info.run_id[:RUN_ID_SHOWN],
                "strategy": r.data.tags.get("strategy", ""),
                "model": r.data.tags.get("model", ""),
                "pair": _market(r.data.tags),
                "timerange": r.data.tags.get("timerange", ""),
                "wf": "yes" if r.data.tags.get("walk_forward") == "true" else "",
                "purpose": r.data.tags.get(PURPOSE_TAG, ""),
                **{header: r.data.metrics.get(key, np.nan) for key, header, _ in BACKTEST_COLUMNS},
                "guard": f"{excluded:,.0f} candles withheld" if excluded else "",
            }
        )
    table = pd.DataFrame(rows)
    if not table.empty:  # grouped by market; a stable sort keeps the newest first in each
        table = table.sort_values("pair", kind="stable").reset_index(drop=True)
    return table, runs


def charted_backtest(
    runs: list[mlflow.entities.Run], run_id: str | None
) -> mlflow.entities.Run | None:
    """The backtest the report charts: ``run_id``, else the newest single-pair backtest
    that is not a paper replay's comparison (the charts show one market)."""
    if run_id is not None:
        chosen = [r for r in runs if r.info.run_id.startswith(run_id)]
        if len(chosen) != 1:
            found = "no" if not chosen else f"{len(chosen)}"
            raise ReportError(
                f"{found} finished backtests with a run id starting {run_id!r}",
                hint="the report's backtests table (column run) and the MLflow UI list them",
            )
        if "whitelist" in chosen[0].data.tags:
            raise ReportError(
                f"backtest {run_id} is of a whitelist: the charts show one market",
                hint="choose a single-pair backtest",
            )
        return chosen[0]
    single = [r for r in runs if "whitelist" not in r.data.tags and PURPOSE_TAG not in r.data.tags]
    return single[0] if single else None


def _market(tags: dict[str, str]) -> str:
    """``BTC/USDT 1h``, or ``10 pairs 5m`` for a whitelist backtest."""
    whitelist = tags.get("whitelist")
    market = f"{len(whitelist.split(','))} pairs" if whitelist else tags.get("pair", "")
    return f"{market} {tags.get('timeframe', '')}".strip()


def formatted(table: pd.DataFrame, columns: tuple[Column, ...]) -> pd.DataFrame:
    """``table`` as text: percentages, ratios and counts per ``columns``; "-" for NaN."""
    out = table.copy()
    for _, header, kind in columns:
        if header in out:
            out[header] = [
                "-" if pd.isna(v) else FORMATS[kind].format(float(v)) for v in out[header]
            ]
    return out.astype(str)


def _table_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_none yet_\n"
    header = (
        "| "
        + " | ".join(table.columns)
        + " |\n| "
        + " | ".join("---" for _ in table.columns)
        + " |\n"
    )
    body = "".join(
        "| " + " | ".join(str(v) for v in row) + " |\n" for row in table.itertuples(index=False)
    )
    return header + body


def _table_html(table: pd.DataFrame, numeric: set[str]) -> str:
    """An HTML table; ``numeric`` columns never wrap, text columns (long model and
    strategy names) wrap anywhere, so a table fits the page instead of scrolling."""
    if table.empty:
        return "<p><em>none yet</em></p>"

    def cell(tag: str, column: str, text: object) -> str:
        kind = "num" if column in numeric else "text"
        return f'<{tag} class="{kind}">{html.escape(str(text))}</{tag}>'

    head = "".join(cell("th", c, c) for c in table.columns)
    body = "".join(
        "<tr>"
        + "".join(cell("td", c, v) for c, v in zip(table.columns, row, strict=True))
        + "</tr>"
        for row in table.itertuples(index=False)
    )
    return f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _numeric(columns: tuple[Column, ...], *extra: str) -> set[str]:
    return {header for _, header, _ in columns} | set(extra)


def _equity(
    trades: pd.DataFrame,
    candles: pd.DataFrame,
    start: datetime,
    end: datetime,
    balance: float,
    timeframe: str,
    fee: float,
) -> tuple[pd.Series, dict[str, np.ndarray]]:
    """Dates of the backtest window and equity curves (start 1): the strategy valued at
    every close, buy and hold, and the daily SMA50 rule on the same candles and fee."""
    inside = (
        (candles["date"] >= pd.Timestamp(start)) & (candles["date"] < pd.Timestamp(end))
    ).to_numpy()
    window = candles[inside].reset_index(drop=True)
    records = [{str(k): v for k, v in row.items()} for row in trades.to_dict("records")]
    strategy = equity_curve(records, window, balance)["equity"].to_numpy() / balance
    returns = np.r_[np.nan, np.diff(np.log(window["close"].to_numpy(dtype="float64")))]
    sma = trend_positions(candles, timeframe)["sma50_daily"][inside]
    curves = {
        "strategy": strategy,
        "buy and hold": equity_of(np.ones(len(window)), returns, fee=fee),
        "daily SMA50 rule": equity_of(sma, returns, fee=fee),
    }
    return window["date"], curves


REGIME_COLUMNS: tuple[Column, ...] = (
    ("profit_total_abs", "profit_total_abs", "money"),
    ("profit_mean", "profit_mean", "pct"),
    ("winrate", "winrate", "pct"),
)


@dataclass(frozen=True)
class LatestBacktest:
    """What the report shows of the newest backtest."""

    images: list[Path]
    per_regime: pd.DataFrame
    note: str  # the lookahead guard's flag, or ""
    caption: str  # which backtest the charts show


def _latest_backtest(
    client: MlflowClient, run: mlflow.entities.Run, layout: UserDir, out: Path
) -> LatestBacktest:
    tags = run.data.tags
    with scratch_dir("report") as tmp:
        zip_path = Path(client.download_artifacts(run.info.run_id, "results/result.zip", str(tmp)))
        parsed = parse_result_zip(zip_path, tags["strategy"])
        regimes_file = Path(
            client.download_artifacts(run.info.run_id, "results/per_regime.csv", str(tmp))
        )
        per_regime = pd.read_csv(regimes_file)
    pair, timeframe = tags["pair"], tags["timeframe"]
    candles = load_candles(layout, "binance", pair, timeframe)
    m = parsed.metrics
    fee = float(run.data.params.get("fee", 0.001))
    start = pd.Timestamp(tags.get("guard.compared_from", m.start))
    excluded = run.data.metrics.get("guard.excluded_candles", 0.0)
    note = ""
    if excluded:
        note = (
            f"Lookahead guard: {excluded:,.0f} candles of {tags.get('timerange', '')} lie in the "
            f"model's training window and were not traded. The curves and the B&H, CAGR and "
            f"Calmar columns start at {start:%Y-%m-%d %H:%M} UTC; Freqtrade's market change "
            f"covers the whole timerange."
        )
    dates, curves = _equity(
        parsed.trades, candles, start, m.end, m.starting_balance, timeframe, fee
    )
    title = f"{tags.get('strategy')} {tags.get('model', '')} {pair} {timeframe}"
    images = [
        equity_plot(
            curves,
            dates,
            out / "equity.png",
            f"{title}: equity (marked to market) vs buy and hold and SMA50",
        ),
        drawdown_plot(
            curves, dates, out / "drawdown.png", f"{title}: drawdown, beside the baselines'"
        ),
    ]
    window = candles[
        (candles["date"] >= pd.Timestamp(m.start)) & (candles["date"] < pd.Timestamp(m.end))
    ].reset_index(drop=True)
    regimes = served_regimes(tags.get("model_uri"), candles, window, m.end, layout, timeframe)
    images.append(
        regime_plot(
            window["date"],
            window["close"],
            regimes,
            out / "regimes.png",
            f"{title}: regimes (filtered) and trades",
            trades=parsed.trades,
        )
    )
    caption = (
        f"Charts: backtest {run.info.run_id[:RUN_ID_SHOWN]} ({title}, "
        f"{m.start:%Y-%m-%d}..{m.end:%Y-%m-%d}); another: tradingbot report --backtest RUN"
    )
    return LatestBacktest(images, per_regime, note, caption)


def build_report(
    layout: UserDir,
    tracking_uri: str,
    out: Path | None = None,
    backtest: str | None = None,
    training: str | None = None,
) -> Report:
    """The report of the user dir's store; the charts are of backtest run ``backtest``
    (default: see :func:`charted_backtest`), and with ``training`` (a run id) that
    training run's out-of-sample regimes per market."""
    client = tracking.configure(tracking_uri, layout)
    models = model_leaderboard(client)
    backtests, runs = backtest_leaderboard(client)
    if models.empty and backtests.empty:
        raise ReportError(
            "no registered models and no backtests yet",
            hint="run make demo, or tradingbot train and tradingbot backtest",
        )
    out = out or layout.reports
    out.mkdir(parents=True, exist_ok=True)
    charted = charted_backtest(runs, backtest)
    latest = _latest_backtest(client, charted, layout, out) if charted is not None else None
    if latest is not None and charted is not None:
        with tracking.tracked_run(run_id=charted.info.run_id):
            for image in latest.images:
                mlflow.log_artifact(str(image), artifact_path="report")
    tables = [
        Section(
            "Registered models (out of sample; '-': not recorded, e.g. Calmar under 90 days)",
            formatted(models, MODEL_COLUMNS),
            _numeric(MODEL_COLUMNS, "version"),
        ),
        Section(
            "Backtests (Freqtrade, offline; mtm: valued at every close, '-': under 90 days)",
            formatted(backtests, BACKTEST_COLUMNS),
            _numeric(BACKTEST_COLUMNS, "pair", "timerange", "wf", "run"),
        ),
    ]
    if latest is not None and charted is not None:
        tables.append(
            Section(
                f"The charted backtest ({charted.info.run_id[:RUN_ID_SHOWN]}) by regime at entry",
                formatted(latest.per_regime, REGIME_COLUMNS),
                _numeric(REGIME_COLUMNS, "trades"),
            )
        )
    tables += journal_sections(layout.journal)
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    images = latest.images if latest else []
    note = " ".join(filter(None, (latest.caption, latest.note))) if latest else ""
    if training is not None:
        images += training_regime_plots(client, training, layout, out)
    markdown = out / "report.md"
    sections = [f"# Tradingbot report\n\n{created}, store `{tracking_uri}`\n"]
    for table in tables:
        sections += [f"## {table.title}\n", _table_markdown(table.frame)]
    sections += [f"> {note}\n"] if note else []
    sections += [f"![{p.stem}]({p.name})\n" for p in images]
    write_text_atomic(markdown, "\n".join(sections))
    page = out / "report.html"
    write_text_atomic(page, _html(created, tracking_uri, tables, images, note))
    return Report(markdown, page, images)


def _html(created: str, uri: str, tables: list[Section], images: list[Path], note: str) -> str:
    figures = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"/><figcaption>{html.escape(p.stem)}</figcaption></figure>'
        for p in images
    )
    body = "".join(
        f"<h2>{html.escape(t.title)}</h2>{_table_html(t.frame, t.numeric)}" for t in tables
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tradingbot report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1320px; padding: 0 1rem; color: #222; }}
table.table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.82rem; width: 100%; }}
table.table th, table.table td {{ padding: 0.25rem 0.45rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
table.table .num {{ text-align: right; white-space: nowrap; }}
table.table th.num {{ white-space: normal; }}
table.table .text {{ text-align: left; overflow-wrap: anywhere; }}
.note {{ background: #fff3cd; border-left: 4px solid #e0a800; padding: 0.5rem 0.8rem; }}
figure {{ margin: 1rem 0; }} img {{ max-width: 100%; }} figcaption {{ color: #666; font-size: 0.85rem; }}
</style></head><body>
<h1>Tradingbot report</h1><p>{html.escape(created)}, store <code>{html.escape(uri)}</code></p>
{body}
{f'<p class="note">{html.escape(note)}</p>' if note else ""}
{figures}
</body></html>
"""
