"""A training run's pictures, drawn on demand from what the run logged.

A training run keeps each market's stitched out-of-sample predictions (with the regime
decided at each candle), not pictures: ``tradingbot report --training RUN`` draws each
market's regimes from them and the imported candles, without loading or refitting a
model. What is drawn is what the walk-forward backtest trades.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from common.atomic import scratch_dir
from common.errors import TradingbotError
from common.layout import UserDir, pair_to_filename
from features.data import load_candles
from ml.plots import regime_plot
from ml.serving.served import PREDICTIONS_ARTIFACT, pooled_predictions_artifact


class TrainingRunError(TradingbotError):
    """A run that is not a training run with logged out-of-sample predictions."""


def training_run(client: MlflowClient, run_id: str) -> mlflow.entities.Run:
    """The training run ``run_id`` (or the one whose id starts with it)."""
    try:
        return client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        pass
    if not run_id.isalnum():
        raise TrainingRunError(
            f"{run_id!r} is not a run id", hint="run ids are hexadecimal (the MLflow UI shows them)"
        )
    # the store does the search: a shared server may hold millions of runs
    found = list(
        client.search_runs(
            [experiment.experiment_id for experiment in client.search_experiments()],
            filter_string=f"attributes.run_id LIKE '{run_id}%' AND tags.model_kind != ''",
            max_results=2,
        )
    )
    if len(found) != 1:
        raise TrainingRunError(
            f"{len(found)} training runs with an id starting {run_id!r}",
            hint="give more characters of the run id (the MLflow UI shows it)",
        )
    return found[0]


def _markets(run: mlflow.entities.Run) -> dict[str, str]:
    """Each market of the run and the artefact holding its out-of-sample predictions."""
    tags = run.data.tags
    pooled = tags.get("pooled_pairs")
    if pooled:
        return {pair: pooled_predictions_artifact(pair) for pair in pooled.split(",")}
    if "pair" not in tags:
        raise TrainingRunError(f"run {run.info.run_id} is not a training run (no pair tag)")
    return {tags["pair"]: PREDICTIONS_ARTIFACT}


def training_regime_plots(
    client: MlflowClient, run_id: str, layout: UserDir, out: Path
) -> list[Path]:
    """One picture per market of training run ``run_id``: the close price coloured by
    the regime the folds' models decided out of sample (``regimes_<PAIR>.png`` in ``out``)."""
    run = training_run(client, run_id)
    timeframe = run.data.tags.get("timeframe", "")
    exchange = run.data.params.get("data.exchange", "binance")
    name = run.data.tags.get("mlflow.runName", run.info.run_id)
    images = []
    with scratch_dir("report") as tmp:
        for pair, artifact in _markets(run).items():
            try:
                local = client.download_artifacts(run.info.run_id, artifact, str(tmp))
            except mlflow.exceptions.MlflowException as exc:
                raise TrainingRunError(
                    f"run {run.info.run_id} logged no out-of-sample predictions for {pair}",
                    hint="train it again (runs keep their predictions since December)",
                ) from exc
            predictions = pd.read_parquet(local)
            if "regime" not in predictions.columns:
                raise TrainingRunError(f"run {run.info.run_id}'s model decides no regimes")
            predictions["date"] = pd.to_datetime(predictions["date"], utc=True)
            candles = load_candles(layout, exchange, pair, timeframe)
            drawn = candles.merge(predictions[["date", "regime"]], on="date", how="inner")
            images.append(
                regime_plot(
                    drawn["date"],
                    drawn["close"],
                    drawn["regime"],
                    out / f"regimes_{pair_to_filename(pair)}.png",
                    f"{name}: {pair} {timeframe} regimes out of sample (filtered, causal)",
                )
            )
    return images
