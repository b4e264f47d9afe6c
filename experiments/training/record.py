"""What a training run records in MLflow: the spec, each fold as a child run, the
stitched out-of-sample predictions and their scores, the final model's regimes."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd

from common.layout import pair_to_filename
from experiments.spec import ExperimentSpec
from ml import tracking
from ml.bundle import ModelBundle, package_versions
from ml.fold_training import FoldResult, Scores, TrainingJob, combined
from ml.run_log import RunLog
from ml.serving.served import PREDICTIONS_ARTIFACT, pooled_predictions_artifact

# what a pooled run's overall.* and baseline.* metrics are (each pair's: <BASE>_<QUOTE>.*)
AGGREGATE_TAG = "overall.aggregate"
MEAN = "mean of the pairs' figures (not one equity curve's)"


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
    experiment: str,
    lineage: dict[str, str],
    workdir: Path,
    *,
    keep: bool = False,
) -> None:
    """One fold as a child run: its rows and windows, scores and regime read-out, and its
    window as an artefact (``fold/window.json``). ``keep`` (``train --keep-folds``) also
    logs the fold's bundle and its predictions: a lean run does not, since the parent
    holds every fold's out-of-sample predictions stitched, which is what a walk-forward
    backtest trades and a report charts."""
    fold = result.fold
    with tracking.tracked_run(
        experiment_id=experiment,
        run_name=f"fold {fold.index}",
        nested=True,
        tags={**lineage, "fold": str(fold.index)},
    ):
        record = RunLog()
        record.params(
            {
                "fold": fold.index,
                "train_rows": fold.train_end - fold.train_start,
                "test_rows": fold.test_end - fold.test_start,
                "embargo_rows": fold.test_start - fold.train_end,
            }
        )
        record.tags(
            {
                "fold.train_first": result.train_window.first.isoformat(),
                "fold.train_last": result.train_window.last.isoformat(),
                "fold.test_first": result.test_window.first.isoformat(),
                "fold.test_last": result.test_window.last.isoformat(),
                "device": result.bundle.metadata.device,
                **_continued(result.bundle),
            }
        )
        record.history(result.bundle.forecaster.history_)
        scores = result.scores
        record.metrics(scores.metrics)
        for name, values in scores.baselines.items():
            record.metrics(values, prefix=f"baseline.{name}.")
        folder = workdir / f"fold_{fold.index}"
        folder.mkdir()
        window: dict[str, object] = {
            "train": result.train_window.model_dump(mode="json"),
            "out_of_sample": result.test_window.model_dump(mode="json"),
        }
        if keep:
            window["bundle_sha256"] = result.bundle.save(folder / "bundle.joblib")
            record.tags({"bundle_sha256": str(window["bundle_sha256"])})
            for pair, market in result.per_market.items():
                market.predictions.drop(columns=["reason"], errors="ignore").to_parquet(
                    folder / _fold_predictions_file(job, pair)
                )
        (folder / "window.json").write_text(json.dumps(window, indent=2))
        record.metrics(regime_report(result, job))
        if result.bundle.input_pipeline is not None:
            record.metrics(result.bundle.input_pipeline.report())
        record.send()
        mlflow.log_artifacts(str(folder), artifact_path="fold")


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
    workdir: Path,
) -> None:
    """The stitched out-of-sample predictions' scores beside the baselines, the fold
    table, and each market's predictions: a walk-forward backtest trades exactly these."""
    overall = combined(scores)
    record = RunLog().metrics(overall.metrics, prefix="overall.")
    for name, values in overall.baselines.items():
        record.metrics(values, prefix=f"baseline.{name}.")
    if job.pooled:
        record.tags({AGGREGATE_TAG: MEAN})
    record.send()
    rows = []
    for result in folds:
        scored = result.scores
        baselines = {f"{b}.{k}": v for b, m in scored.baselines.items() for k, v in m.items()}
        rows.append({"fold": result.fold.index, **scored.metrics, **baselines})
    pd.DataFrame(rows).to_csv(workdir / "fold_metrics.csv", index=False)
    mlflow.log_artifact(str(workdir / "fold_metrics.csv"), artifact_path="walk_forward")
    for pair, predictions in out_of_sample.items():
        folder, name = predictions_artifact(job, pair).rsplit("/", 1)
        path = workdir / name
        predictions.drop(columns=["reason"], errors="ignore").to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=folder)


def log_final(bundle: ModelBundle, job: TrainingJob) -> None:
    """The final model's device, training history, and how often its regimes switch on
    each market (the pictures: ``tradingbot report --training RUN``, from the logged
    predictions)."""
    record = RunLog().tags({"device": bundle.metadata.device, **_continued(bundle)})
    record.history(bundle.forecaster.history_, prefix="final.")
    if bundle.regime_model is not None:
        for market in job.markets:
            bound = bundle.for_pair(market.pair)
            regimes = bound.regimes(bound.scaled(market.features))["regime"]
            prefix = f"{pair_to_filename(market.pair)}." if job.pooled else ""
            record.metrics({f"{prefix}regime.switches_per_1000": _switches(regimes)})
    record.send()


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
