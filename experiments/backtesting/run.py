"""`tradingbot backtest`: a real, offline Freqtrade backtest recorded in MLflow.

Resolves the model (``NAME@alias`` or ``NAME/version``) to its registered version,
runs the backtest (:mod:`strategies.runner`), parses the result zip and logs an
MLflow run in experiment ``backtests``: the normalised metrics, the result zip and
its sha256, the per-regime table, the lookahead-guard report, and tags that link
it to the model version and its training run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from common.atomic import scratch_dir
from common.context import RunContext
from common.layout import UserDir, pair_to_filename
from experiments.backtesting.checks import (
    fitting_strategy,
    require_out_of_sample,
    walk_forward_timerange,
)
from experiments.backtesting.live_predictions import (
    PairComparison,
    compare_with_registry,
    live_prediction_inputs,
    live_tags,
)
from features.timeframes import timeframe_to_seconds
from features.timerange import TimeRange
from ml import tracking
from ml.model_uris import model_name
from ml.run_log import RunLog
from ml.serving.prediction_log import open_log
from ml.serving.served import (
    ServedModels,
    WalkForwardInputs,
    serve,
    walk_forward_inputs,
)
from ml.sizing import DEFAULT_RISK_BUDGET, RiskBudget
from strategies.equity import comparison, portfolio_comparison
from strategies.freqtrade_process import FreqtradeProcess
from strategies.journal import Imported
from strategies.journal_sources import journal_backtest
from strategies.results import BacktestMetrics, ParsedResult, parse_result_zip, per_regime
from strategies.risk import RiskBlocked, RiskManager, RiskSettings
from strategies.runner import (
    BacktestRequest,
    BacktestRun,
    run_backtest,
    tuned_params_file,
    whitelist_candles,
)

EXPERIMENT = "backtests"


@dataclass(frozen=True)
class BacktestSummary:
    run_id: str
    metrics: BacktestMetrics
    per_regime: pd.DataFrame
    guard: dict[str, object]
    cache_hit: bool
    result_zip: Path
    model_uri: str | None
    # mark-to-market "strategy" and the baselines on the same candles and fee
    comparison: dict[str, dict[str, float]]
    compared_from: pd.Timestamp | None = None  # later than the start: the guard withheld candles
    per_pair: pd.DataFrame = field(default_factory=pd.DataFrame)  # whitelists only
    journalled: Imported | None = None  # what the trade journal recorded of it
    params_file: Path | None = None  # the tuned <Strategy>.json Freqtrade read; None: defaults
    # --live-predictions: each pair's recorded forecasts against the registry's versions
    live: list[PairComparison] = field(default_factory=list)


BACKTEST_STAGES = (
    "resolving the model",
    "Freqtrade backtesting (offline)",
    "reading the result, comparing with buy and hold and trend rules",
    "recording the run in MLflow",
)


def compared_window(
    start: datetime, end: datetime, guard: dict[str, Any], excluded: int
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The candles the strategy is compared on, [start, end): the backtest's window, less
    the candles the lookahead guard withheld (at or before the end of the model's
    training window), which the strategy could not trade but buy and hold would."""
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    trained_until = guard.get("train_window_last")
    if isinstance(guard.get("train_window_last_by_pair"), dict):  # a whitelist: the latest
        withheld = dict(guard.get("in_training_window", {}))
        ends = [t for p, t in guard["train_window_last_by_pair"].items() if withheld.get(p)]
        trained_until = max(ends, key=pd.Timestamp) if ends else None
    if excluded and trained_until:
        first = max(first, pd.Timestamp(trained_until) + pd.Timedelta(microseconds=1))
    return first, max(first, last)


def backtest(
    *,
    strategy: str | None,
    pair: str,
    timeframe: str,
    exchange: str,
    timerange: str,
    model: str | None,
    context: RunContext,
    use_cache: bool = True,
    walk_forward: bool = False,
    progress: Callable[[str], None] | None = None,
    pairs: Sequence[str] | None = None,
    max_open_trades: int | None = None,
    live_predictions: str | None = None,
    started: FreqtradeProcess | None = None,
) -> BacktestSummary:
    """Backtest ``strategy`` (None: the one the model's kind is traded by) with ``model``.
    ``walk_forward`` uses the model's fold bundles instead, each on its own out-of-sample
    window (the timerange: their span, or a part of it). A strategy that does not fit
    the model, or a window without out-of-sample candles, is refused before anything
    runs (:mod:`experiments.backtesting.checks`).
    ``pairs`` (two or more): one Freqtrade backtest over the whole whitelist, each pair
    served by its own model (``NAME__<BASE>_<QUOTE>@alias``), compared with every rule
    held in every pair (equal shares), with results per pair. ``max_open_trades``
    (default: one per pair) and the stake are Freqtrade's own ("unlimited" stake:
    the available balance split over the free slots).
    ``live_predictions``: a running bot's name; the backtest trades what it served, over
    the span it recorded (:mod:`experiments.backtesting.live_predictions`), and the
    summary says where that differs from the recorded versions' batch predictions.
    ``progress`` is called with the name of each of the BACKTEST_STAGES as it starts.
    ``started``: the Freqtrade process to run it in, which a command starts before its
    own imports (``tradingbot backtest``); else one starts when Freqtrade runs."""
    layout, tracking_uri = context.layout, context.tracking_uri
    say = progress or (lambda _text: None)
    timeframe_to_seconds(timeframe)  # an odd timeframe is named as such, before anything runs
    whitelist = tuple(pairs) if pairs and len(pairs) > 1 else ()
    pair = pairs[0] if pairs and not whitelist else pair
    say(BACKTEST_STAGES[0])
    client = tracking.configure(tracking_uri, layout)
    served = serve(client, model, whitelist)
    strategy = fitting_strategy(client, served, strategy)
    inputs = walk_forward_inputs(client, served, pair, layout, exchange) if walk_forward else None
    compared_live: list[PairComparison] = []
    if live_predictions is not None:
        log = open_log(layout, live_predictions)
        inputs, frames = live_prediction_inputs(
            log, whitelist or (pair,), layout.backtests / "live" / log.path.stem
        )
        compared_live = [
            compare_with_registry(frame, market, layout, exchange, timeframe)
            for market, frame in frames.items()
        ]
    if inputs is not None:
        timerange = walk_forward_timerange(timerange, inputs.timerange)
    elif model:
        require_out_of_sample(client, served, timerange)
    TimeRange.parse(timerange)
    request = BacktestRequest(
        strategy=strategy,
        pair=pair,
        pairs=whitelist,
        timeframe=timeframe,
        exchange=exchange,
        timerange=timerange,
        model_version=f"{model}={served.version}" if model else None,
        tracking_uri=tracking_uri,
        # default: a position per pair can be open at once, as in the equal-share baselines
        max_open_trades=max_open_trades or max(1, len(whitelist)),
        **_model_inputs(served, inputs),
    )
    risk = _risk_manager(context)
    candles = whitelist_candles(request, layout)  # read once, for the key and the evaluation
    say(BACKTEST_STAGES[1])
    with risk.backtest_slot():
        run = run_backtest(
            request,
            layout,
            environment=context.environment,
            use_cache=use_cache,
            candles=candles,
            started=started,
        )
    say(BACKTEST_STAGES[2])
    evaluation = _evaluate(run, request, candles, risk_budget(client, served))
    say(BACKTEST_STAGES[3])
    folds = inputs.folds if inputs is not None and live_predictions is None else None
    tags = _tags(request, run, evaluation, model, served, folds)
    if live_predictions is not None:
        tags |= live_tags(live_predictions, compared_live)
    run_id = _record(client, layout, request, run, evaluation, tags)
    risk.run_id = run_id
    risk.record_backtest(run_id, evaluation.parsed.metrics.max_drawdown_account)
    _tag_versions(client, model, served, run_id)
    journalled = _journal(layout, request, run, served)
    params_file = tuned_params_file(request, layout)
    summary = _summary(run_id, run, evaluation, served.uri, journalled, params_file)
    return dataclasses.replace(summary, live=compared_live)


def _journal(
    layout: UserDir, request: BacktestRequest, run: BacktestRun, served: ServedModels
) -> Imported:
    return journal_backtest(
        layout,
        run.result_zip,
        request.strategy,
        model_uri=served.uri,
        model_version=served.version,
        config_hash=run.key,
    )


def _summary(
    run_id: str,
    run: BacktestRun,
    evaluation: Evaluation,
    model_uri: str | None,
    journalled: Imported | None,
    params_file: Path | None,
) -> BacktestSummary:
    metrics = evaluation.parsed.metrics
    first_evaluated = evaluation.window[0]
    return BacktestSummary(
        run_id,
        metrics,
        evaluation.regimes,
        evaluation.guard,
        run.cache_hit,
        run.result_zip,
        model_uri,
        evaluation.compared,
        first_evaluated if first_evaluated > pd.Timestamp(metrics.start) else None,
        evaluation.pairs_table,
        journalled,
        params_file,
    )


def _model_inputs(served: ServedModels, inputs: WalkForwardInputs | None) -> dict[str, Any]:
    """What serves the strategy: the model URI, or in a walk-forward backtest the stitched
    predictions (one file, or one per pair of a whitelist served by its models)."""
    # a whitelist's per-pair versions, exactly as resolved and recorded here
    pinned = {pair: uri for pair, (uri, _, _) in served.by_pair.items()} or None
    if inputs is None:
        return {"model_uri": served.uri, "model_uris": pinned}
    return {
        "model_uri": served.uri if served.by_pair or served.pooled else None,
        "model_uris": pinned,
        "predictions": inputs.predictions,
        "predictions_by_pair": inputs.by_pair or None,
    }


def _risk_manager(context: RunContext) -> RiskManager:
    """The risk manager (its settings from the context's environment), which may refuse
    backtests (a drawdown guardrail tripped)."""
    risk = RiskManager(RiskSettings.from_env(context.environment, context.layout))
    decision = risk.check_backtest()
    if not decision.allowed:
        raise RiskBlocked(
            f"backtest blocked by the risk manager: {decision.reason}",
            hint="see: tradingbot risk status",
        )
    return risk


@dataclass(frozen=True)
class Evaluation:
    """A backtest's result read back, beside buy and hold and the trend rules."""

    parsed: ParsedResult
    regimes: pd.DataFrame
    guard: dict[str, Any]
    excluded: int  # candles the lookahead guard withheld
    window: tuple[pd.Timestamp, pd.Timestamp]  # compared on [start, end)
    compared: dict[str, dict[str, float]]
    pairs_table: pd.DataFrame


def risk_budget(client: mlflow.MlflowClient, served: ServedModels) -> RiskBudget:
    """The risk budget of the served model's ``[sizing]`` (from its training run's
    spec), which the sized rules beside it then hold to; the default for a model
    without one."""
    runs = [served.training_run] if served.training_run else []
    runs += [run for _, _, run in served.by_pair.values()]
    if not runs:
        return DEFAULT_RISK_BUDGET
    params = client.get_run(str(runs[0])).data.params
    if "sizing.target_volatility" not in params:
        return DEFAULT_RISK_BUDGET
    return RiskBudget(float(params["sizing.target_volatility"]), float(params["sizing.band"]))


def _evaluate(
    run: BacktestRun,
    request: BacktestRequest,
    candles_by_pair: dict[str, pd.DataFrame],
    budget: RiskBudget,
) -> Evaluation:
    parsed = parse_result_zip(run.result_zip, request.strategy)
    guard = json.loads(run.guard_report.read_text()) if run.guard_report.exists() else {}
    excluded = sum(int(v) for v in dict(guard.get("in_training_window", {})).values())
    window = compared_window(parsed.metrics.start, parsed.metrics.end, guard, excluded)
    records = parsed.trades.to_dict("records") if not parsed.trades.empty else []
    money = {"starting_balance": float(request.starting_balance), "fee": request.fee}
    pairs_table = pd.DataFrame()
    if request.pairs:
        compared = portfolio_comparison(
            records, candles_by_pair, request.timeframe, window, risk_budget=budget, **money
        )
        pairs_table = per_pair(parsed.trades, candles_by_pair, window)
    else:
        candles = candles_by_pair[request.pair]
        compared = comparison(
            records, candles, request.timeframe, window, risk_budget=budget, **money
        )
    regimes = per_regime(parsed.trades)
    return Evaluation(parsed, regimes, guard, excluded, window, compared, pairs_table)


def _tags(
    request: BacktestRequest,
    run: BacktestRun,
    evaluation: Evaluation,
    model: str | None,
    served: ServedModels,
    folds: int | None,
) -> dict[str, str]:
    """The backtest run's tags: lineage, every input's hash, the models it served."""
    tags = {
        **tracking.lineage(),
        "strategy": request.strategy,
        "pair": request.pair,
        "timeframe": request.timeframe,
        "timerange": request.timerange,
        "cache_key": run.key,
        "cache_hit": str(run.cache_hit),
        "result_sha256": evaluation.parsed.sha256,
        "data_sha256": run.inputs["data_sha256"],
        "markets_sha256": run.inputs["markets_sha256"],
        "strategy_sha256": run.inputs["strategy_sha256"],
        "strategy_params_sha256": run.inputs["strategy_params_sha256"],  # "defaults": untuned
        "guard.compared_from": evaluation.window[0].isoformat(),
    }
    if model:
        tags.update(
            {
                "model": model,
                "model_uri": str(served.uri),
                "model_version": str(served.version),
                "model_run_id": str(served.training_run),
            }
        )
    if folds is not None:
        tags.update({"walk_forward": "true", "walk_forward.folds": str(folds)})
    if request.pairs:
        whitelist = ",".join(request.pairs)
        tags.update({"pair": whitelist, "whitelist": whitelist})
        tags.update(
            {f"model_version.{pair_to_filename(p)}": v for p, (_, v, _) in served.by_pair.items()}
        )
    return tags


def _record(
    client: mlflow.MlflowClient,
    layout: UserDir,
    request: BacktestRequest,
    run: BacktestRun,
    evaluation: Evaluation,
    tags: dict[str, str],
) -> str:
    """One MLflow run in experiment ``backtests``: metrics, the comparison, the guard,
    the per-regime and per-pair tables and the result files. Returns its id."""
    experiment = tracking.experiment_id(client, EXPERIMENT, layout)
    tracking.fail_stale_runs(client, experiment)  # backtests killed while logging
    market = f"{len(request.pairs)} pairs" if request.pairs else request.pair
    name = f"{request.strategy} {market} {request.timerange}"
    guard, compared = evaluation.guard, evaluation.compared
    with (
        scratch_dir("backtest") as tmp,
        tracking.tracked_run(experiment_id=experiment, run_name=name, tags=tags) as active,
    ):
        metrics = evaluation.parsed.metrics.model_dump(exclude={"start", "end"})
        # Freqtrade's figures move only when a trade closes: recorded as closed.*, beside
        # the marked-to-market mtm.* (what the summary prints under the same labels)
        record = RunLog().metrics({k: float(v) for k, v in metrics.items()}, prefix="closed.")
        # mark-to-market measures and the baselines, under the training runs' names
        record.metrics(compared["strategy"], prefix="mtm.")
        for baseline, values in compared.items():
            if baseline != "strategy":
                record.metrics(values, prefix=f"baseline.{baseline}.")
        dissimilar = sum(int(v) for v in dict(guard.get("dissimilar", {})).values())
        record.metrics(
            {"guard.excluded_candles": evaluation.excluded, "guard.dissimilar_candles": dissimilar}
        )
        record.params(
            {
                "starting_balance": str(request.starting_balance),
                "fee": request.fee,
                "max_open_trades": request.max_open_trades,
            }
        )
        _log_tables(evaluation, Path(tmp), record)
        record.send()
        for artefact in (run.result_zip, run.config, run.guard_report, run.log):
            if artefact.exists():
                mlflow.log_artifact(str(artefact), artifact_path="results")
        return str(active.info.run_id)


def _log_tables(evaluation: Evaluation, tmp: Path, record: RunLog) -> None:
    table = tmp / "per_regime.csv"
    evaluation.regimes.to_csv(table, index=False)
    mlflow.log_artifact(str(table), artifact_path="results")
    if evaluation.pairs_table.empty:
        return
    for row in evaluation.pairs_table.to_dict("records"):
        key = pair_to_filename(str(row["pair"]))
        values = {str(k): float(v) for k, v in row.items() if k != "pair"}
        record.metrics(values, prefix=f"pair.{key}.")
    by_pair_file = tmp / "per_pair.csv"
    evaluation.pairs_table.to_csv(by_pair_file, index=False)
    mlflow.log_artifact(str(by_pair_file), artifact_path="results")


def _tag_versions(
    client: mlflow.MlflowClient, model: str | None, served: ServedModels, run_id: str
) -> None:
    """Each served model version names this backtest as its last one."""
    if not model:
        return
    name = model.split("@")[0]
    for pair, (_, version, _) in served.by_pair.items():
        client.set_model_version_tag(model_name(name, pair), version, "last_backtest_run", run_id)
    if not served.by_pair and served.version:
        client.set_model_version_tag(
            name.split("/")[0], served.version, "last_backtest_run", run_id
        )


def per_pair(
    trades: pd.DataFrame,
    candles_by_pair: dict[str, pd.DataFrame],
    window: tuple[pd.Timestamp, pd.Timestamp],
) -> pd.DataFrame:
    """Per pair of a whitelist: trades, profit (stake currency and mean ratio), winrate,
    and the pair's buy-and-hold return over the compared window."""
    rows = []
    for pair, candles in candles_by_pair.items():
        inside = candles[(candles["date"] >= window[0]) & (candles["date"] < window[1])]
        closes = inside["close"].to_numpy(dtype="float64")
        own = trades[trades["pair"] == pair] if len(trades) else trades
        rows.append(
            {
                "pair": pair,
                "trades": float(len(own)),
                "profit_total_abs": float(own["profit_abs"].sum()) if len(own) else 0.0,
                "profit_mean": float(own["profit_ratio"].mean()) if len(own) else 0.0,
                "winrate": float((own["profit_abs"] > 0).mean()) if len(own) else 0.0,
                "buy_and_hold": float(closes[-1] / closes[0] - 1.0) if len(closes) > 1 else 0.0,
            }
        )
    return pd.DataFrame(rows)
