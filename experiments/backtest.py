"""`tradingbot backtest`: a real, offline Freqtrade backtest recorded in MLflow.

Resolves the model (``NAME@alias`` or ``NAME/version``) to its registered version,
runs the backtest (:mod:`strategies.runner`), parses the result zip and logs an
MLflow run in experiment ``backtests``: the normalised metrics, the result zip and
its sha256, the per-regime table, the lookahead-guard report, and tags that link
it to the model version and its training run.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from common.layout import UserDir
from experiments.spec import TimeRange, model_name
from features.data import load_candles
from features.data.store import pair_to_filename
from features.pipeline import build
from features.timeframes import timeframe_to_seconds
from ml import tracking
from ml.bundle import ModelBundle
from ml.registry import RegistryError
from ml.serving import PAIR_PLACEHOLDER
from strategies.equity import comparison, portfolio_comparison
from strategies.journal import Imported
from strategies.journal_sources import journal_backtest
from strategies.results import BacktestMetrics, parse_result_zip, per_regime
from strategies.risk import RiskBlocked, RiskManager, RiskSettings
from strategies.runner import BacktestRequest, run_backtest

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


def resolve_model(client: mlflow.MlflowClient, model: str) -> tuple[str, str, str]:
    """``NAME@alias`` or ``NAME/version`` -> (models:/ URI, version, training run id)."""
    try:
        if "@" in model:
            name, alias = model.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        elif "/" in model:
            name, number = model.split("/", 1)
            version = client.get_model_version(name, number)
        else:
            raise RegistryError(
                f"model {model!r}: write NAME@alias or NAME/version, e.g. btc_1h_hmm_lstm@champion"
            )
    except MlflowException as exc:
        raise RegistryError(
            f"model {model!r} is not in the registry ({exc.message.splitlines()[0]})",
            hint="train one (tradingbot train SPEC) and promote it (tradingbot promote NAME --version N)",
        ) from exc
    return f"models:/{version.name}/{version.version}", str(version.version), str(version.run_id)


PREDICTIONS_ARTIFACT = "walk_forward/predictions.parquet"


def stitch_walk_forward(
    client: mlflow.MlflowClient, model_run_id: str, userdir: Path, exchange: str, out: Path
) -> tuple[Path, str, int]:
    """Out-of-sample predictions of each fold bundle of a training run, stitched in time order.

    Each fold's bundle predicts only its own out-of-sample window (with the history
    before it as input, causally). Training logs exactly these predictions
    (``walk_forward/predictions.parquet``), so they are read from the run; runs trained
    before that are predicted again from their fold bundles.
    Returns (parquet path, Freqtrade timerange, folds).
    """
    run = client.get_run(model_run_id)
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{model_run_id}'"
    )
    if not children:
        raise RegistryError(f"training run {model_run_id} has no fold runs to walk forward with")
    children.sort(key=lambda child: int(child.data.tags.get("fold", "0")))
    logged = {a.path for a in client.list_artifacts(model_run_id, "walk_forward")}
    if PREDICTIONS_ARTIFACT in logged:  # what training scored: read, not recomputed
        stitched = pd.read_parquet(
            client.download_artifacts(model_run_id, PREDICTIONS_ARTIFACT, str(out))
        )
        stitched["date"] = pd.to_datetime(stitched["date"], utc=True)
        return _stitched_file(stitched, out, model_run_id, len(children))
    pieces, features_by_spec = [], {}
    for child in children:
        folder = Path(
            mlflow.artifacts.download_artifacts(
                run_id=child.info.run_id,
                artifact_path="fold",
                dst_path=str(out / child.info.run_id),
            )
        )
        bundle = ModelBundle.load(folder / "bundle.joblib")
        window = json.loads((folder / "window.json").read_text())["out_of_sample"]
        meta = bundle.metadata
        key = (meta.pair, meta.timeframe, meta.spec_hash)
        if key not in features_by_spec:
            candles = load_candles(userdir, exchange, meta.pair, meta.timeframe)
            features_by_spec[key] = build(candles, bundle.feature_spec, meta.timeframe)
        features = features_by_spec[key]
        first, last = pd.Timestamp(window["first"]), pd.Timestamp(window["last"])
        upto = features[features["date"] <= last]
        predictions = bundle.predict_features(upto)
        pieces.append(
            predictions[predictions["date"] >= first].drop(columns=["reason"], errors="ignore")
        )
    stitched = pd.concat(pieces, ignore_index=True)
    return _stitched_file(stitched, out, model_run_id, len(children))


def _stitched_file(
    stitched: pd.DataFrame, out: Path, model_run_id: str, folds: int
) -> tuple[Path, str, int]:
    stitched = stitched.drop(columns=["reason"], errors="ignore").sort_values("date")
    if stitched["date"].duplicated().any():
        raise RegistryError(f"fold windows of run {model_run_id} overlap: cannot stitch them")
    path = out / "walk_forward_predictions.parquet"
    out.mkdir(parents=True, exist_ok=True)
    stitched.to_parquet(path, index=False)
    start = stitched["date"].iloc[0].floor("D")
    end = stitched["date"].iloc[-1].floor("D") + pd.Timedelta(days=1)
    return path, f"{start:%Y%m%d}-{end:%Y%m%d}", folds


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


def resolve_whitelist(
    client: mlflow.MlflowClient, model: str, pairs: Sequence[str]
) -> tuple[str, dict[str, tuple[str, str, str]]]:
    """``NAME@alias`` for a whitelist -> (URI template ``models:/NAME__{pair}@alias``,
    {pair: (URI, version, training run)}), every pair's model named by the rule of
    :func:`experiments.spec.model_name`. Every pair without one is named in the error."""
    name, alias = model.split("@", 1) if "@" in model else (model, "champion")
    resolved, missing = {}, []
    for pair in pairs:
        try:
            resolved[pair] = resolve_model(client, f"{model_name(name, pair)}@{alias}")
        except RegistryError:
            missing.append(f"{pair} (no {model_name(name, pair)}@{alias})")
    if missing:
        raise RegistryError(
            f"the whitelist has pairs model {name} has no version for: {', '.join(missing)}",
            hint=f"train them (a spec with [data] pairs), promote them "
            f"(tradingbot promote {name} --reason ...), or leave them out of --pairs",
        )
    return f"models:/{name}__{PAIR_PLACEHOLDER}@{alias}", resolved


def backtest(
    *,
    strategy: str,
    pair: str,
    timeframe: str,
    exchange: str,
    timerange: str,
    model: str | None,
    userdir: Path,
    tracking_uri: str,
    use_cache: bool = True,
    walk_forward: bool = False,
    progress: Callable[[str], None] | None = None,
    pairs: Sequence[str] | None = None,
    max_open_trades: int | None = None,
) -> BacktestSummary:
    """Backtest ``strategy`` with ``model``. ``walk_forward`` uses the model's fold bundles
    instead, each on its own out-of-sample window (the timerange is then their span).
    ``pairs`` (two or more): one Freqtrade backtest over the whole whitelist, each pair
    served by its own model (``NAME__<BASE>_<QUOTE>@alias``), compared with every rule
    held in every pair (equal shares), with results per pair. ``max_open_trades``
    (default: one per pair) and the stake are Freqtrade's own ("unlimited" stake:
    the available balance split over the free slots).
    ``progress`` is called with the name of each of the BACKTEST_STAGES as it starts."""
    say = progress or (lambda _text: None)
    timeframe_to_seconds(timeframe)  # an odd timeframe is named as such, before anything runs
    whitelist = tuple(pairs) if pairs and len(pairs) > 1 else ()
    pair = pairs[0] if pairs and not whitelist else pair
    say(BACKTEST_STAGES[0])
    client = tracking.configure(tracking_uri, userdir)
    model_uri = version = model_run = None
    by_pair: dict[str, tuple[str, str, str]] = {}
    if model and whitelist:
        model_uri, by_pair = resolve_whitelist(client, model, whitelist)
        version = ",".join(f"{p}:{v}" for p, (_, v, _) in by_pair.items())
    elif model:
        model_uri, version, model_run = resolve_model(client, model)
    predictions, folds = None, 0
    stitched_by_pair: dict[str, Path] = {}
    if walk_forward:
        if not model_run and not by_pair:
            raise RegistryError(
                "--walk-forward needs --model NAME@alias (its training run holds the folds)"
            )
        spans = []
        for key, training_run in (
            [(pair, model_run)] if not by_pair else [(p, r) for p, (_, _, r) in by_pair.items()]
        ):
            workdir = UserDir(userdir).walk_forward(str(training_run))
            stitched, span, count = stitch_walk_forward(
                client, str(training_run), userdir, exchange, workdir
            )
            stitched_by_pair[key], folds = stitched, max(folds, count)
            spans.append(TimeRange.parse(span))
        # every pair's folds cover the common span
        start = max(s.start for s in spans if s.start is not None)
        end = min(s.end for s in spans if s.end is not None)
        if start >= end:
            raise RegistryError("the pairs' walk-forward windows do not overlap")
        timerange = str(TimeRange(start=start, end=end))
        if not by_pair:
            predictions = stitched_by_pair.pop(pair)
    TimeRange.parse(timerange)
    request = BacktestRequest(
        strategy=strategy,
        pair=pair,
        pairs=whitelist,
        timeframe=timeframe,
        exchange=exchange,
        timerange=timerange,
        model_uri=None if walk_forward and not by_pair else model_uri,
        model_version=f"{model}={version}" if model else None,
        tracking_uri=tracking_uri,
        predictions=predictions,
        predictions_by_pair=stitched_by_pair or None,
        # default: a position per pair can be open at once, as in the equal-share baselines
        max_open_trades=max_open_trades or max(1, len(whitelist)),
    )
    risk = RiskManager(RiskSettings.from_env(os.environ, userdir))
    decision = risk.check_backtest()
    if not decision.allowed:
        raise RiskBlocked(
            f"backtest blocked by the risk manager: {decision.reason}",
            hint="see: tradingbot risk status",
        )
    say(BACKTEST_STAGES[1])
    with risk.backtest_slot():
        run = run_backtest(request, userdir, use_cache=use_cache)
    say(BACKTEST_STAGES[2])
    parsed = parse_result_zip(run.result_zip, strategy)
    regimes = per_regime(parsed.trades)
    guard = json.loads(run.guard_report.read_text()) if run.guard_report.exists() else {}
    excluded = sum(int(v) for v in dict(guard.get("in_training_window", {})).values())
    window = compared_window(parsed.metrics.start, parsed.metrics.end, guard, excluded)
    records = parsed.trades.to_dict("records") if not parsed.trades.empty else []
    if whitelist:
        candles_by_pair = {p: load_candles(userdir, exchange, p, timeframe) for p in whitelist}
        compared = portfolio_comparison(
            records,
            candles_by_pair,
            timeframe,
            window,
            starting_balance=float(request.starting_balance),
            fee=request.fee,
        )
        pairs_table = per_pair(parsed.trades, candles_by_pair, window)
    else:
        compared = comparison(
            records,
            load_candles(userdir, exchange, pair, timeframe),
            timeframe,
            window,
            starting_balance=float(request.starting_balance),
            fee=request.fee,
        )
        pairs_table = pd.DataFrame()

    say(BACKTEST_STAGES[3])
    experiment = tracking.experiment_id(client, EXPERIMENT, userdir)
    tracking.fail_stale_runs(client, experiment)  # backtests killed while logging
    tags = {
        **tracking.lineage(),
        "strategy": strategy,
        "pair": pair,
        "timeframe": timeframe,
        "timerange": timerange,
        "cache_key": run.key,
        "cache_hit": str(run.cache_hit),
        "result_sha256": parsed.sha256,
        "data_sha256": run.inputs["data_sha256"],
        "markets_sha256": run.inputs["markets_sha256"],
        "strategy_sha256": run.inputs["strategy_sha256"],
        "strategy_params_sha256": run.inputs["strategy_params_sha256"],  # "defaults": untuned
    }
    if model:
        tags.update(
            {
                "model": model,
                "model_uri": str(model_uri),
                "model_version": str(version),
                "model_run_id": str(model_run),
            }
        )
    if walk_forward:
        tags.update({"walk_forward": "true", "walk_forward.folds": str(folds)})
    if whitelist:
        tags.update({"pair": ",".join(whitelist), "whitelist": ",".join(whitelist)})
        tags.update({f"model_version.{pair_to_filename(p)}": v for p, (_, v, _) in by_pair.items()})
    tags["guard.compared_from"] = window[0].isoformat()
    market = f"{len(whitelist)} pairs" if whitelist else pair
    with (
        tempfile.TemporaryDirectory() as tmp,
        tracking.tracked_run(
            experiment_id=experiment, run_name=f"{strategy} {market} {timerange}", tags=tags
        ) as active,
    ):
        metrics = parsed.metrics.model_dump(exclude={"start", "end"})
        tracking.log_metrics({k: float(v) for k, v in metrics.items()})
        # mark-to-market measures and the baselines, under the training runs' names
        tracking.log_metrics(compared["strategy"], prefix="mtm.")
        for name, values in compared.items():
            if name != "strategy":
                tracking.log_metrics(values, prefix=f"baseline.{name}.")
        mlflow.log_metric("guard.excluded_candles", excluded)
        mlflow.log_metric(
            "guard.dissimilar_candles",
            sum(int(v) for v in dict(guard.get("dissimilar", {})).values()),
        )
        mlflow.log_params(
            {
                "starting_balance": str(request.starting_balance),
                "fee": request.fee,
                "max_open_trades": request.max_open_trades,
            }
        )
        table = Path(tmp) / "per_regime.csv"
        regimes.to_csv(table, index=False)
        mlflow.log_artifact(str(table), artifact_path="results")
        if not pairs_table.empty:
            for row in pairs_table.to_dict("records"):
                key = pair_to_filename(str(row["pair"]))
                tracking.log_metrics(
                    {str(k): float(v) for k, v in row.items() if k != "pair"}, prefix=f"pair.{key}."
                )
            by_pair_file = Path(tmp) / "per_pair.csv"
            pairs_table.to_csv(by_pair_file, index=False)
            mlflow.log_artifact(str(by_pair_file), artifact_path="results")
        mlflow.log_artifact(str(run.result_zip), artifact_path="results")
        mlflow.log_artifact(str(run.config), artifact_path="results")
        for extra in (run.guard_report, run.log):
            if extra.exists():
                mlflow.log_artifact(str(extra), artifact_path="results")
        run_id = active.info.run_id
    risk.run_id = run_id
    risk.record_backtest(run_id, parsed.metrics.max_drawdown_account)
    journalled = journal_backtest(
        userdir,
        run.result_zip,
        strategy,
        model_uri=model_uri,
        model_version=version,
        config_hash=run.key,
    )
    if model and by_pair:
        for pair_model, (_, pair_version, _) in zip(
            [model_name(model.split("@")[0], p) for p in by_pair], by_pair.values(), strict=True
        ):
            client.set_model_version_tag(pair_model, pair_version, "last_backtest_run", run_id)
    elif model and version:
        client.set_model_version_tag(
            model.split("@")[0].split("/")[0], version, "last_backtest_run", run_id
        )
    return BacktestSummary(
        run_id,
        parsed.metrics,
        regimes,
        guard,
        run.cache_hit,
        run.result_zip,
        model_uri,
        compared,
        window[0] if window[0] > pd.Timestamp(parsed.metrics.start) else None,
        pairs_table,
        journalled,
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
