"""`tradingbot train`: run an experiment spec end to end and record it in MLflow.

One parent run per call with a child run per walk-forward fold. A whitelist spec
(``[data] pairs``) trains one model per pair under one more parent run
(:func:`train_whitelist`). The parent holds
the flattened spec, the lineage tags (spec hash, data sha256, git commit, seed,
device), the overall and baseline metrics, the fold table, the regime plot and
the environment; the final bundle is logged as a pyfunc model and registered
under the spec's name with alias ``challenger`` once the run has finished. A run
that fails ends FAILED (Ctrl-C: KILLED) and registers nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from common.atomic import scratch_dir
from common.errors import DataError, SpecError
from experiments.spec import ExperimentSpec
from experiments.spec_data import cached_features, spec_candles
from features.candles import DataWindow, data_window
from features.data.importer import kept_bad_ticks
from ml import tracking
from ml.bundle import ModelBundle, package_versions
from ml.fold_training import FoldResult, Scores, TrainingJob, fit_final, score, walk_forward
from ml.plots import regime_plot
from ml.registry import log_bundle, reconcile, register_finished_run
from ml.run_log import RunLog

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    experiment_id: str
    model_name: str
    version: int
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    folds: int
    # the stitched out-of-sample predictions of the folds, indexed like the run's candles
    out_of_sample: pd.DataFrame = field(default_factory=pd.DataFrame)
    # a pooled model: each pair's scores; then metrics and baselines are their means
    per_pair: dict[str, Scores] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # about the data it learnt from


def _log_fold(result: FoldResult, workdir: Path, record: RunLog) -> None:
    fold = result.fold
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
        }
    )
    record.history(result.bundle.forecaster.history_)
    record.metrics(result.metrics)
    for name, values in result.baselines.items():
        record.metrics(values, prefix=f"baseline.{name}.")
    folder = workdir / f"fold_{fold.index}"
    folder.mkdir()
    sha = result.bundle.save(folder / "bundle.joblib")
    (folder / "window.json").write_text(
        json.dumps(
            {
                "train": result.train_window.model_dump(mode="json"),
                "out_of_sample": result.test_window.model_dump(mode="json"),
                "bundle_sha256": sha,
            },
            indent=2,
        )
    )
    result.predictions.drop(columns=["reason"], errors="ignore").to_parquet(
        folder / "predictions.parquet"
    )
    record.tags({"bundle_sha256": sha})
    mlflow.log_artifacts(str(folder), artifact_path="fold")


def regime_report(
    result: FoldResult, features: pd.DataFrame, columns: tuple[str, ...]
) -> dict[str, float]:
    """What the fold's regime model reports of its read-out on the test rows (a jump
    vote: each penalty's bull share and switches; ``RegimeModel.fold_report``)."""
    model = result.bundle.regime_model
    if model is None:
        return {}
    rows = result.predictions.index.to_numpy()
    x = features[list(columns)].to_numpy(dtype="float64")[: rows[-1] + 1]
    return model.fold_report(x, rows)


def progress_steps(spec: ExperimentSpec) -> int:
    """How many times :func:`train` calls ``progress`` for one pair: features, each fold,
    the final fit, logging, registration."""
    return 4 + spec.walk_forward.folds


def train(
    spec: ExperimentSpec,
    *,
    userdir: Path,
    tracking_uri: str,
    spec_text: str | None = None,
    progress: Progress | None = None,
    experiment_name: str | None = None,
    parent_run_id: str | None = None,
    threads: int | None = None,
) -> TrainResult:
    """Train a single-pair spec (see module doc). ``experiment_name`` and
    ``parent_run_id``: a whitelist's pair, recorded in the whitelist spec's experiment
    under its parent run (see :func:`train_whitelist`)."""
    if spec.is_whitelist:
        raise SpecError(
            f"spec {spec.name} has a whitelist: train it with train_whitelist, or one pair"
        )
    say = progress or (lambda _text: None)
    job, window = _training_job(spec, userdir, threads, say)
    client = tracking.configure(tracking_uri, userdir)
    experiment = tracking.experiment_id(client, experiment_name or spec.name, userdir)
    tracking.fail_stale_runs(client, experiment)
    reconcile(client, spec.name)  # versions left by registrations that were killed
    lineage = tracking.lineage(
        window,
        spec_hash=spec.hash,
        feature_spec_hash=job.feature_spec.hash,
        seed=spec.seed,
        model_kind=spec.model.kind,
    )
    warnings = _data_warnings(spec, job.candles, userdir)
    if warnings:
        lineage["data.warnings"] = "; ".join(warnings)
    run_id, model_uri, overall, folds = _tracked_training(
        job, spec, spec_text, experiment, lineage, parent_run_id, say
    )
    # Registered only once the run has FINISHED, so no version ever points at a run
    # that failed or was killed; a kill from here on leaves a finished run that the
    # next call's reconcile() completes.
    say("registering the model")
    version = register_finished_run(
        client,
        spec.name,
        run_id,
        model_uri,
        tags={"spec_hash": spec.hash, "data_sha256": window.sha256},
    )
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment,
        model_name=spec.name,
        version=version,
        metrics=overall.metrics,
        baselines=overall.baselines,
        folds=len(folds.rows),
        out_of_sample=folds.out_of_sample,
        warnings=warnings,
    )


def _data_warnings(spec: ExperimentSpec, candles: pd.DataFrame, userdir: Path) -> list[str]:
    """What the import flagged and kept in the training candles: the training learns
    from it, so it says so (printed, and the run's tag ``data.warnings``)."""
    data = spec.data
    ticks = kept_bad_ticks(userdir, data.exchange, data.pair, data.timeframe)
    first, last = candles["date"].iloc[0], candles["date"].iloc[-1]
    inside = [tick for tick in ticks if first <= pd.Timestamp(tick) <= last]
    if not inside:
        return []
    return [
        f"{len(inside)} bad tick(s) flagged at import are kept in the {data.pair} "
        f"{data.timeframe} candles (first {inside[0]:%Y-%m-%d %H:%M} UTC): import again "
        "with --repair to fix them"
    ]


def _tracked_training(
    job: TrainingJob,
    spec: ExperimentSpec,
    spec_text: str | None,
    experiment: str,
    lineage: dict[str, str],
    parent_run_id: str | None,
    say: Progress,
) -> tuple[str, str, Scores, _Folds]:
    """The training run: walk-forward folds, out-of-sample summary, the final fit and
    the logged model. Returns (run id, model URI, overall evaluation, folds); the run
    has FINISHED when this returns."""
    with (
        scratch_dir("train") as tmp,
        tracking.tracked_run(
            experiment_id=experiment,
            run_name=f"{spec.name} train",
            tags=lineage,
            parent_run_id=parent_run_id,
        ) as parent,
    ):
        workdir = Path(tmp)
        _log_spec(spec, spec_text)
        folds = _walk_forward(job, experiment, lineage, workdir, say)
        overall = _log_out_of_sample(job, folds, workdir)
        say("fitting the final model on the whole window")
        bundle = fit_final(job, folds.last.bundle if folds.last is not None else None)
        _log_final(bundle, job, workdir, f"{spec.name}: {job.pair} {job.timeframe}")
        say("logging the model")
        model_uri, _ = log_bundle(bundle, workdir, job.candles)
        run_id: str = parent.info.run_id
    return run_id, model_uri, overall, folds


def _training_job(
    spec: ExperimentSpec, userdir: Path, threads: int | None, say: Progress
) -> tuple[TrainingJob, DataWindow]:
    """The spec's candles (at least 500) and cached features, as a training job."""
    data = spec.data
    candles = spec_candles(data, userdir)
    if len(candles) < 500:
        raise DataError(
            f"only {len(candles)} {data.pair} {data.timeframe} candles in timerange {data.timerange or '(all)'}",
            hint="import more data or widen --timerange (at least 500 candles)",
        )
    feature_spec = spec.feature_spec
    feature_spec.check_timeframe(data.timeframe)
    say("building features")
    features = cached_features(
        candles, feature_spec, userdir, data.pair, data.timeframe, data.exchange
    )
    job = TrainingJob(
        name=spec.name,
        candles=candles,
        features=features,
        feature_spec=feature_spec,
        config=spec.training,
        pair=data.pair,
        timeframe=data.timeframe,
        seed=spec.seed,
        threads=threads,
    )
    return job, data_window(candles, data.pair, data.timeframe)


def _log_spec(spec: ExperimentSpec, spec_text: str | None) -> None:
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


@dataclass
class _Folds:
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per fold: its metrics
    stitched: list[pd.DataFrame] = field(default_factory=list)
    last: FoldResult | None = None

    @property
    def out_of_sample(self) -> pd.DataFrame:
        return pd.concat(self.stitched)


def _walk_forward(
    job: TrainingJob, experiment: str, lineage: dict[str, str], workdir: Path, say: Progress
) -> _Folds:
    """Every fold fitted, scored and recorded as a child run."""
    folds = _Folds()
    for result in walk_forward(job):
        folds.last = result
        say(f"fold {result.fold.index + 1}/{job.config.walk_forward.folds} done")
        with tracking.tracked_run(
            experiment_id=experiment,
            run_name=f"fold {result.fold.index}",
            nested=True,
            tags={**lineage, "fold": str(result.fold.index)},
        ):
            record = RunLog()
            _log_fold(result, workdir, record)
            record.metrics(regime_report(result, job.features, job.config.regime.columns))
            record.send()
        folds.stitched.append(result.predictions)
        baselines = {f"{b}.{k}": v for b, m in result.baselines.items() for k, v in m.items()}
        folds.rows.append({"fold": result.fold.index, **result.metrics, **baselines})
    return folds


def _log_out_of_sample(job: TrainingJob, folds: _Folds, workdir: Path) -> Scores:
    """The stitched out-of-sample predictions scored beside the baselines, and logged: a
    walk-forward backtest trades exactly these."""
    out_of_sample = folds.out_of_sample
    overall: Scores = score(out_of_sample, job.candles, job.config, job.timeframe)
    record = RunLog().metrics(overall.metrics, prefix="overall.")
    for name, values in overall.baselines.items():
        record.metrics(values, prefix=f"baseline.{name}.")
    record.send()
    pd.DataFrame(folds.rows).to_csv(workdir / "fold_metrics.csv", index=False)
    mlflow.log_artifact(str(workdir / "fold_metrics.csv"), artifact_path="walk_forward")
    out_of_sample.drop(columns=["reason"], errors="ignore").to_parquet(
        workdir / "predictions.parquet", index=False
    )
    mlflow.log_artifact(str(workdir / "predictions.parquet"), artifact_path="walk_forward")
    return overall


def _log_final(bundle: ModelBundle, job: TrainingJob, workdir: Path, title: str) -> None:
    """The final model's device, training history, and its regimes as a picture."""
    record = RunLog().tags({"device": bundle.metadata.device})
    record.history(bundle.forecaster.history_, prefix="final.")
    if bundle.regime_model is None:
        record.send()
        return
    regimes = bundle.regimes(job.features)["regime"]
    plot = regime_plot(
        job.candles["date"],
        job.candles["close"],
        regimes,
        workdir / "regimes.png",
        f"{title} regimes (filtered, causal)",
    )
    mlflow.log_artifact(str(plot), artifact_path="plots")
    record.metrics({"regime.switches_per_1000": _switches(regimes)}).send()


def _switches(regimes: pd.Series) -> float:
    labels = regimes[regimes != ""].to_numpy()
    if len(labels) < 2:
        return 0.0
    return 1000.0 * float((labels[1:] != labels[:-1]).sum()) / (len(labels) - 1)
