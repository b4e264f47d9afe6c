"""What a training run records in MLflow: the spec, each fold (its figures at the fold's
index as step, its windows in ``walk_forward/folds.json``), the stitched out-of-sample
predictions and their scores, the final model's regimes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from common.layout import pair_to_filename
from experiments.spec import ExperimentSpec
from ml import tracking
from ml.bundle import ModelBundle, package_versions
from ml.fold_training import FoldResult, Scores, TrainingJob, combined
from ml.run_log import RunLog
from ml.serving.served import FOLDS_ARTIFACT, PREDICTIONS_ARTIFACT, pooled_predictions_artifact

# what a pooled run's overall.* and baseline.* metrics are (each pair's: <BASE>_<QUOTE>.*)
AGGREGATE_TAG = "overall.aggregate"
MEAN = "mean of the pairs' figures (not one equity curve's)"
# a fold's figures in its training run: this prefix, the fold's index as step
FOLD_METRIC_PREFIX = "fold."


def log_spec(spec: ExperimentSpec, spec_text: str | None) -> None:
    """The spec as parameters, as JSON and as written, and the package versions."""
    RunLog().params(
        {
            **tracking.flatten(spec.model_dump(mode="json", exclude={"features"})),
            "features.spec_hash": spec.feature_spec.hash,
        }
    ).send()
    mlflow.log_dict(spec.model_dump(mode="json"), "spec/spec.json")
    if spec_text is not None:
        mlflow.log_text(spec_text, "spec/spec.toml")
    mlflow.log_dict(package_versions(), "environment/versions.json")


def predictions_artifact(job: TrainingJob, pair: str) -> str:
    """Where a run logs a market's stitched out-of-sample predictions (what a
    walk-forward backtest reads)."""
    return pooled_predictions_artifact(pair) if job.pooled else PREDICTIONS_ARTIFACT


def _fold_predictions_file(job: TrainingJob, pair: str) -> str:
    return f"predictions_{pair_to_filename(pair)}.parquet" if job.pooled else "predictions.parquet"


def log_fold(
    result: FoldResult,
    job: TrainingJob,
    workdir: Path,
    figures: RunLog,
    *,
    keep: bool = False,
) -> dict[str, Any]:
    """One fold, recorded in the training run itself (a fold is no run of its own: seven
    runs per pair were most of a pair's records). Its figures are metrics at the fold's
    index as step, so the MLflow UI charts them across folds: ``fold.<metric>``, the
    regime read-out and the pipeline's report. Its baselines' figures are in the fold
    table (``walk_forward/fold_metrics.csv``) and its ``folds.json`` entry, not metric
    rows: as rows they were two thirds of a pair's (77 a fold), and the run's own
    ``baseline.*`` metrics already set the model beside the rules.
    ``keep`` (``train --keep-folds``) also logs its model's training history
    (``fold_<k>.<metric>`` per epoch) and its bundle and predictions under
    ``walk_forward/fold_<k>/``.
    The metrics go to ``figures`` (the run's, sent together). Returns the fold's entry of
    ``walk_forward/folds.json`` (its rows, windows and figures; written by
    :func:`log_out_of_sample`)."""
    fold = result.fold
    scores = result.scores
    metrics = dict(scores.metrics)
    for name, values in scores.baselines.items():
        metrics |= {f"baseline.{name}.{key}": value for key, value in values.items()}
    metrics |= regime_report(result, job)
    if result.bundle.input_pipeline is not None:
        metrics |= result.bundle.input_pipeline.report()
    metrics = {key: float(value) for key, value in metrics.items() if math.isfinite(value)}
    entry: dict[str, Any] = {
        "fold": fold.index,
        "train_rows": fold.train_end - fold.train_start,
        "test_rows": fold.test_end - fold.test_start,
        "embargo_rows": fold.test_start - fold.train_end,
        "train": result.train_window.model_dump(mode="json"),
        "out_of_sample": result.test_window.model_dump(mode="json"),
        "device": result.bundle.metadata.device,
        **_continued(result.bundle),
        "metrics": metrics,
    }
    charted = {key: value for key, value in metrics.items() if not key.startswith("baseline.")}
    figures.metrics(charted, prefix=FOLD_METRIC_PREFIX, step=fold.index)
    if keep:
        # a row per epoch or boosting round and fold: most of a run's rows when lean
        figures.history(result.bundle.forecaster.history_, prefix=f"fold_{fold.index}.")
        folder = workdir / f"fold_{fold.index}"
        folder.mkdir()
        entry["bundle_sha256"] = result.bundle.save(folder / "bundle.joblib")
        for pair, market in result.per_market.items():
            market.predictions.drop(columns=["reason"], errors="ignore").to_parquet(
                folder / _fold_predictions_file(job, pair)
            )
        mlflow.log_artifacts(str(folder), artifact_path=f"walk_forward/fold_{fold.index}")
    return entry


def regime_report(result: FoldResult, job: TrainingJob) -> dict[str, float]:
    """What the fold's regime model reports of its read-out on each market's test rows
    (a jump vote: each penalty's bull share and switches; ``RegimeModel.fold_report``);
    a pooled run's per pair, as ``<BASE>_<QUOTE>.<name>``."""
    model = result.bundle.regime_model
    if model is None:
        return {}
    out: dict[str, float] = {}
    for market in job.markets:
        rows = result.per_market[market.pair].predictions.index.to_numpy()
        bound = result.bundle.for_pair(market.pair)
        features = bound.scaled(market.features.iloc[: rows[-1] + 1])
        x = features[list(job.config.regime.columns)].to_numpy(dtype="float64")
        report = model.fold_report(x, rows)
        prefix = f"{pair_to_filename(market.pair)}." if job.pooled else ""
        out |= {f"{prefix}{key}": value for key, value in report.items()}
    return out


def log_out_of_sample(
    job: TrainingJob,
    out_of_sample: dict[str, pd.DataFrame],
    scores: dict[str, Scores],
    folds: list[FoldResult],
    fold_entries: list[dict[str, Any]],
    workdir: Path,
    figures: RunLog,
) -> None:
    """The stitched out-of-sample predictions' scores beside the baselines (to
    ``figures``), the fold table and the folds' windows (``walk_forward/folds.json``,
    from :func:`log_fold`), and each market's predictions: a walk-forward backtest
    trades exactly these."""
    overall = combined(scores)
    figures.metrics(overall.metrics, prefix="overall.")
    for name, values in overall.baselines.items():
        figures.metrics(values, prefix=f"baseline.{name}.")
    if job.pooled:
        figures.tags({AGGREGATE_TAG: MEAN})
    rows = []
    for result in folds:
        scored = result.scores
        baselines = {f"{b}.{k}": v for b, m in scored.baselines.items() for k, v in m.items()}
        rows.append({"fold": result.fold.index, **scored.metrics, **baselines})
    pd.DataFrame(rows).to_csv(workdir / "fold_metrics.csv", index=False)
    mlflow.log_artifact(str(workdir / "fold_metrics.csv"), artifact_path="walk_forward")
    folder, name = FOLDS_ARTIFACT.rsplit("/", 1)
    (workdir / name).write_text(json.dumps(fold_entries, indent=2))
    mlflow.log_artifact(str(workdir / name), artifact_path=folder)
    for pair, predictions in out_of_sample.items():
        folder, name = predictions_artifact(job, pair).rsplit("/", 1)
        path = workdir / name
        predictions.drop(columns=["reason"], errors="ignore").to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=folder)


def log_final(bundle: ModelBundle, job: TrainingJob, figures: RunLog) -> None:
    """The final model's device, training history, and how often its regimes switch on
    each market (to ``figures``; the pictures: ``tradingbot report --training RUN``,
    from the logged predictions)."""
    figures.tags({"device": bundle.metadata.device, **_continued(bundle)})
    figures.history(bundle.forecaster.history_, prefix="final.")
    if bundle.regime_model is not None:
        for market in job.markets:
            bound = bundle.for_pair(market.pair)
            regimes = bound.regimes(bound.scaled(market.features))["regime"]
            prefix = f"{pair_to_filename(market.pair)}." if job.pooled else ""
            figures.metrics({f"{prefix}regime.switches_per_1000": _switches(regimes)})


def _continued(bundle: ModelBundle) -> dict[str, str]:
    """With ``[lifetime] continual_learning``: what the model continued, or that it could
    not (``scratch``: its inputs differed, e.g. regimes named otherwise)."""
    if not bundle.config.lifetime.continual_learning:
        return {}
    return {"continued_from": bundle.metadata.continued_from or "scratch"}


def _switches(regimes: pd.Series) -> float:
    labels = regimes[regimes != ""].to_numpy()
    if len(labels) < 2:
        return 0.0
    return 1000.0 * float((labels[1:] != labels[:-1]).sum()) / (len(labels) - 1)
