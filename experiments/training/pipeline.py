"""`tradingbot train`: run an experiment spec end to end and record it in MLflow.

One run per call, its walk-forward folds recorded in it (figures at the fold's index as
step, windows in ``walk_forward/folds.json``), for a single-pair model and a pooled one
alike (a per-pair whitelist trains one such run per pair under a parent run:
:mod:`experiments.training.whitelist`). The run holds the flattened spec, the lineage
tags (spec hash, data sha256, git commit, seed, device), the out-of-sample and baseline
metrics, the fold table, the stitched out-of-sample predictions and the environment; the final bundle is
logged as a pyfunc model and registered under the spec's name with alias
``challenger`` once the run has finished. A run that fails ends FAILED (Ctrl-C:
KILLED) and registers nothing.

A pooled run (``[data] pooling = "pooled"``) scores each fold and the out-of-sample
stretch per pair against the same baselines; its ``overall.<metric>`` is the mean over
the pairs (tag ``overall.aggregate``) and ``<BASE>_<QUOTE>.<metric>`` each pair's. It is
registered under the spec's own name, with the pairs in its version's ``pooled_pairs`` tag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from common.atomic import scratch_dir
from common.context import RunContext
from common.executors import Executor
from experiments.spec import ExperimentSpec
from experiments.training import record
from experiments.training.data import data_warnings, training_job
from ml import tracking
from ml.bundle import Continuation, ModelBundle
from ml.fold_training import FoldResult, Scores, TrainingJob, combined, fit_final, walk_forward
from ml.registry import log_bundle, purge_old_versions, reconcile, register_finished_run
from ml.run_log import RunLog, held

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
    # (a pooled model: the first pair's; every pair's are logged)
    out_of_sample: pd.DataFrame = field(default_factory=pd.DataFrame)
    # a pooled model: each pair's scores; then metrics and baselines are their means
    per_pair: dict[str, Scores] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # about the data it learnt from


def progress_steps(spec: ExperimentSpec) -> int:
    """How many times :func:`train` calls ``progress`` for one model: features, each
    fold, the final fit, logging, registration."""
    return 4 + spec.walk_forward.folds


def train(
    spec: ExperimentSpec,
    *,
    context: RunContext,
    spec_text: str | None = None,
    progress: Progress | None = None,
    experiment_name: str | None = None,
    parent_run_id: str | None = None,
    threads: int | None = None,
    executor: Executor | None = None,
    keep_folds: bool = False,
    continued: ModelBundle | None = None,
) -> TrainResult:
    """Train a single-pair or pooled spec (see module doc). ``experiment_name`` and
    ``parent_run_id``: a whitelist's pair, recorded in the whitelist spec's experiment
    under its parent run (see :func:`experiments.training.whitelist.train_whitelist`).
    ``executor``: where independent folds run (see :func:`ml.fold_training.walk_forward`).
    ``keep_folds``: log each fold's bundle and predictions too (``--keep-folds``).
    ``continued``: with ``[lifetime] continual_learning``, the final model continues this
    bundle's forecaster (a retrain's champion) instead of the last fold's; the folds
    never do (it was trained on their out-of-sample candles)."""
    layout, tracking_uri = context.layout, context.tracking_uri
    say = progress or (lambda _text: None)
    job = training_job(spec, layout, threads, say)
    client = tracking.configure(tracking_uri, layout)
    experiment = tracking.experiment_id(client, experiment_name or spec.name, layout)
    tracking.fail_stale_runs(client, experiment)
    reconcile(client, spec.name)  # versions left by registrations that were killed
    lineage = tracking.lineage(
        job.window,
        spec_hash=spec.hash,
        feature_spec_hash=job.feature_spec.hash,
        seed=spec.seed,
        model_kind=spec.model.kind,
    )
    warnings = data_warnings(layout, spec.data.exchange, job.timeframe, job.markets)
    if warnings:
        lineage["data.warnings"] = "; ".join(warnings)
    if job.pooled:
        lineage["pooled_pairs"] = ",".join(m.pair for m in job.markets)
    recording = _Recording(experiment, lineage, parent_run_id, spec_text, keep_folds, continued)
    run_id, model_uri, outcome = _tracked_training(job, spec, recording, say, executor)
    # Registered only once the run has FINISHED, so no version ever points at a run
    # that failed or was killed; a kill from here on leaves a finished run that the
    # next call's reconcile() completes.
    say("registering the model")
    tags = {"spec_hash": spec.hash, "data_sha256": job.window.sha256}
    if job.pooled:
        tags["pooled_pairs"] = lineage["pooled_pairs"]
    version = register_finished_run(client, spec.name, run_id, model_uri, tags=tags)
    if spec.lifetime.purge_old_models is not None:  # FreqAI's: old models leave the disk
        purge_old_versions(client, spec.name, spec.lifetime.purge_old_models)
    overall = combined(outcome.scores)
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment,
        model_name=spec.name,
        version=version,
        metrics=overall.metrics,
        baselines=overall.baselines,
        folds=len(outcome.folds),
        out_of_sample=next(iter(outcome.out_of_sample.values())),
        per_pair=outcome.scores if job.pooled else {},
        warnings=warnings,
    )


@dataclass(frozen=True)
class _Recording:
    """Where and how a training run is recorded."""

    experiment: str
    lineage: dict[str, str]
    parent_run_id: str | None
    spec_text: str | None
    keep_folds: bool
    continued: ModelBundle | None = None  # what the final model continues (a champion)


def _champion(bundle: ModelBundle | None) -> Continuation | None:
    if bundle is None:
        return None
    meta = bundle.metadata
    return bundle.forecaster, f"{meta.name} trained to {meta.train_window.last:%Y-%m-%d %H:%M}"


@dataclass
class _Outcome:
    """What the walk-forward of a run produced."""

    folds: list[FoldResult] = field(default_factory=list)
    out_of_sample: dict[str, pd.DataFrame] = field(default_factory=dict)  # per market
    scores: dict[str, Scores] = field(default_factory=dict)  # of out_of_sample, per market
    fold_entries: list[dict[str, Any]] = field(default_factory=list)  # walk_forward/folds.json


def _tracked_training(
    job: TrainingJob,
    spec: ExperimentSpec,
    recording: _Recording,
    say: Progress,
    executor: Executor | None,
) -> tuple[str, str, _Outcome]:
    """The training run: walk-forward folds, out-of-sample summary, the final fit and
    the logged model. Returns (run id, model URI, outcome); the run has FINISHED when
    this returns."""
    run_name = f"{spec.name} {'pooled train' if job.pooled else 'train'}"
    with (
        scratch_dir("train") as tmp,
        tracking.tracked_run(
            experiment_id=recording.experiment,
            run_name=run_name,
            tags=recording.lineage,
            parent_run_id=recording.parent_run_id,
        ) as parent,
    ):
        workdir = Path(tmp)
        record.log_spec(spec, recording.spec_text)
        # sent after the model (ml.run_log.held); the folds' figures are not the model's
        with held() as figures, held() as fold_figures:
            outcome = _walk_forward(job, recording, workdir, say, executor, fold_figures)
            record.log_out_of_sample(
                job,
                outcome.out_of_sample,
                outcome.scores,
                outcome.folds,
                outcome.fold_entries,
                workdir,
                figures,
            )
            say("fitting the final model on the whole window")
            last = outcome.folds[-1].bundle if outcome.folds else None
            bundle = fit_final(job, last, _champion(recording.continued))
            record.log_final(bundle, job, figures)
            say("logging the model")
            logged = log_bundle(bundle, workdir, job.markets[0].candles)
            figures.model_id = logged.model_id
        run_id: str = parent.info.run_id
    return run_id, logged.model_uri, outcome


def _walk_forward(
    job: TrainingJob,
    recording: _Recording,
    workdir: Path,
    say: Progress,
    executor: Executor | None,
    figures: RunLog,
) -> _Outcome:
    """Every fold fitted, scored and recorded in the run; the out-of-sample predictions
    stitched and scored per market."""
    outcome = _Outcome()
    for result in walk_forward(job, executor):
        outcome.folds.append(result)
        say(f"fold {result.fold.index + 1}/{job.config.walk_forward.folds} done")
        entry = record.log_fold(result, job, workdir, figures, keep=recording.keep_folds)
        outcome.fold_entries.append(entry)
    for market in job.markets:
        pieces = [result.per_market[market.pair].predictions for result in outcome.folds]
        outcome.out_of_sample[market.pair] = pd.concat(pieces)
    outcome.scores = job.score(outcome.out_of_sample)
    return outcome
