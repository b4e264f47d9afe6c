"""`tradingbot report`: what the user dir's MLflow store says, as Markdown and one HTML page.

* a leaderboard of registered models (aliases, walk-forward metrics) and of backtests;
* for the latest backtest: the equity curve (valued at every close) against buy
  and hold and the daily SMA50 rule on the same candles and fee, the drawdown,
  performance by the regime at entry, and the regime plot of the model's training run.

The HTML page embeds its pictures (base64), so it is one self-contained file. The
PNGs are also logged to the backtest's MLflow run under ``report/``.
"""

from __future__ import annotations

import base64
import html
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from features.atomic import write_text_atomic
from features.data import load_candles
from features.errors import TradingbotError
from ml import tracking
from ml.baselines import trend_positions
from ml.metrics import equity_of
from ml.plots import drawdown_plot, equity_plot
from strategies.equity import equity_curve
from strategies.results import parse_result_zip

MODEL_COLUMNS = (
    "overall.calmar",
    "overall.sharpe",
    "overall.max_drawdown",
    "overall.drawdown_vs_buy_hold",
    "overall.changes_per_year",
    "overall.accuracy",
)
BACKTEST_COLUMNS = (
    "profit_total",
    "market_change",
    "mtm.calmar",
    "mtm.max_drawdown",
    "mtm.drawdown_vs_buy_hold",
    "baseline.sma50_daily.calmar",
    "sharpe_wallet",
    "trades",
)


class ReportError(TradingbotError):
    """Nothing to report on."""


@dataclass(frozen=True)
class Report:
    markdown: Path
    html: Path
    images: list[Path]


def model_leaderboard(client: MlflowClient) -> pd.DataFrame:
    rows = []
    for model in client.search_registered_models():
        for version in client.search_model_versions(f"name = '{model.name}'"):
            metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
            aliases = sorted(
                a for a, v in (model.aliases or {}).items() if str(v) == str(version.version)
            )
            rows.append(
                {
                    "model": model.name,
                    "version": int(version.version),
                    "aliases": ", ".join(aliases),
                    **{c.split(".", 1)[1]: metrics.get(c, np.nan) for c in MODEL_COLUMNS},
                }
            )
    table = pd.DataFrame(rows)
    return (
        table.sort_values("calmar", ascending=False).reset_index(drop=True) if len(table) else table
    )


def backtest_leaderboard(client: MlflowClient) -> tuple[pd.DataFrame, list[mlflow.entities.Run]]:
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
    rows = [
        {
            "strategy": r.data.tags.get("strategy", ""),
            "model": r.data.tags.get("model", ""),
            "timerange": r.data.tags.get("timerange", ""),
            "walk-forward": r.data.tags.get("walk_forward", "false"),
            **{c: r.data.metrics.get(c, np.nan) for c in BACKTEST_COLUMNS},
        }
        for r in runs
    ]
    return pd.DataFrame(rows), runs


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
        "| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |\n"
        for row in table.itertuples(index=False)
    )
    return header + body


def _table_html(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p><em>none yet</em></p>"
    rendered = table.to_html(
        index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="table", escape=True
    )
    return f'<div class="scroll">{rendered}</div>'


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


def build_report(userdir: Path, tracking_uri: str, out: Path | None = None) -> Report:
    client = tracking.configure(tracking_uri, userdir)
    models = model_leaderboard(client)
    backtests, runs = backtest_leaderboard(client)
    if models.empty and backtests.empty:
        raise ReportError(
            "no registered models and no backtests yet",
            hint="run make demo, or tradingbot train and tradingbot backtest",
        )
    out = out or userdir / "reports"
    out.mkdir(parents=True, exist_ok=True)
    images: list[Path] = []
    regimes_table = pd.DataFrame()
    latest = runs[0] if runs else None
    if latest is not None:
        with tempfile.TemporaryDirectory() as tmp:
            zip_path = Path(
                client.download_artifacts(latest.info.run_id, "results/result.zip", tmp)
            )
            parsed = parse_result_zip(zip_path, latest.data.tags["strategy"])
            regimes_file = Path(
                client.download_artifacts(latest.info.run_id, "results/per_regime.csv", tmp)
            )
            regimes_table = pd.read_csv(regimes_file)
            pair, timeframe = latest.data.tags["pair"], latest.data.tags["timeframe"]
            candles = load_candles(userdir, "binance", pair, timeframe)
            m = parsed.metrics
            fee = float(latest.data.params.get("fee", 0.001))
            dates, curves = _equity(
                parsed.trades, candles, m.start, m.end, m.starting_balance, timeframe, fee
            )
            title = f"{latest.data.tags.get('strategy')} {latest.data.tags.get('model', '')} {pair} {timeframe}"
            images.append(
                equity_plot(
                    curves,
                    dates,
                    out / "equity.png",
                    f"{title}: equity (marked to market) vs buy and hold and SMA50",
                )
            )
            images.append(
                drawdown_plot(curves["strategy"], dates, out / "drawdown.png", f"{title}: drawdown")
            )
            model_run = latest.data.tags.get("model_run_id")
            if model_run:
                try:
                    regime_png = Path(
                        client.download_artifacts(model_run, "plots/regimes.png", tmp)
                    )
                    (out / "regimes.png").write_bytes(regime_png.read_bytes())
                    images.append(out / "regimes.png")
                except Exception:  # a model without a regime model has no regime plot
                    pass
        with tracking.tracked_run(run_id=latest.info.run_id):
            for image in images:
                mlflow.log_artifact(str(image), artifact_path="report")
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    markdown = out / "report.md"
    sections = [
        f"# Tradingbot report\n\n{created}, store `{tracking_uri}`\n",
        "## Registered models (walk-forward, out of sample)\n",
        _table_markdown(models),
        "## Backtests (Freqtrade, offline)\n",
        _table_markdown(backtests),
    ]
    if latest is not None:
        sections += ["## Latest backtest by regime at entry\n", _table_markdown(regimes_table)]
        sections += [f"![{p.stem}]({p.name})\n" for p in images]
    write_text_atomic(markdown, "\n".join(sections))
    page = out / "report.html"
    write_text_atomic(page, _html(created, tracking_uri, models, backtests, regimes_table, images))
    return Report(markdown, page, images)


def _html(
    created: str,
    uri: str,
    models: pd.DataFrame,
    backtests: pd.DataFrame,
    regimes: pd.DataFrame,
    images: list[Path],
) -> str:
    figures = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"/><figcaption>{html.escape(p.stem)}</figcaption></figure>'
        for p in images
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tradingbot report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }}
table.table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }}
table.table th, table.table td {{ padding: 0.3rem 0.7rem; border-bottom: 1px solid #ddd; text-align: right; }}
table.table th:first-child, table.table td:first-child {{ text-align: left; }}
.scroll {{ overflow-x: auto; }}
figure {{ margin: 1rem 0; }} img {{ max-width: 100%; }} figcaption {{ color: #666; font-size: 0.85rem; }}
</style></head><body>
<h1>Tradingbot report</h1><p>{html.escape(created)}, store <code>{html.escape(uri)}</code></p>
<h2>Registered models (walk-forward, out of sample)</h2>{_table_html(models)}
<h2>Backtests (Freqtrade, offline)</h2>{_table_html(backtests)}
<h2>Latest backtest by regime at entry</h2>{_table_html(regimes)}
{figures}
</body></html>
"""
