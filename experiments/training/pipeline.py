"""`tradingbot train`: run an experiment spec end to end and record it in MLflow.

One run per call, its walk-forward folds recorded in it (figures at the fold's index as
step, windows in ``walk_forward/folds.json``), for a single-pair model and a pooled one
alike (a per-pair whitelist trains one such run per pair under a parent run:
:mod:`experiments.training.whitelist`). The run holds the flattened spec, the lineage
tags (spec hash, data sha256, git commit, seed, device), the out-of-sample and baseline
metrics, the fold table, the stitched out-of-sample predictions and the environment; the final bundle is
logged as a pyfunc model and registered under the spec's name with alias
``challenger`` once the run has finished. The run is written once the training has been
computed (:mod:`experiments.training.compute`) and starts at the computation's start: a
training that fails while it computes records nothing, one that fails while it is
recorded ends FAILED (Ctrl-C: KILLED), and neither registers anything.

A pooled run (``[data] pooling = "pooled"``) scores each fold and the out-of-sample
stretch per pair against the same baselines; its ``overall.<metric>`` is the mean over
the pairs (tag ``overall.aggregate``) and ``<BASE>_<QUOTE>.<metric>`` each pair's. It is
registered under the spec's own name, with the pairs in its version's ``pooled_pairs`` tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from common.atomic import scratch_dir
from common.context import RunContext
from common.executors import Executor
from experiments.spec import ExperimentSpec
from experiments.training import record
from experiments.training.compute import Computed, Progress, compute, progress_steps
from ml import tracking
from ml.bundle import ModelBundle
from ml.fold_training import Scores, combined
from ml.registry import log_bundle, purge_old_versions, reconcile, register_finished_run
from ml.run_log import held

__all__ = ["Progress", "TrainResult", "progress_steps", "record_training", "train"]


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
    """Train a single-pair or pooled spec and record it (see module doc): computed by
    :func:`experiments.training.compute.compute` (``threads``, ``executor`` and
    ``continued`` are its), then recorded by :func:`record_training` (``experiment_name``,
    ``parent_run_id``: a whitelist's pair, recorded in the whitelist spec's experiment
    under its parent run; ``keep_folds``: log each fold's bundle and predictions too)."""
    computed = compute(
        spec,
        context.layout,
        threads=threads,
        progress=progress,
        executor=executor,
        continued=continued,
    )
    return record_training(
        computed,
        spec,
        context=context,
        spec_text=spec_text,
        progress=progress,
        experiment_name=experiment_name,
        parent_run_id=parent_run_id,
        keep_folds=keep_folds,
    )


def record_training(
    computed: Computed,
    spec: ExperimentSpec,
    *,
    context: RunContext,
    spec_text: str | None = None,
    progress: Progress | None = None,
    experiment_name: str | None = None,
    parent_run_id: str | None = None,
    keep_folds: bool = False,
) -> TrainResult:
    """Record a computed training as one MLflow run (started when its computation
    began) and register its final model as ``challenger`` once the run has finished."""
    say = progress or (lambda _text: None)
    job = computed.job
    client = tracking.configure(context.tracking_uri, context.layout)
    experiment = tracking.experiment_id(client, experiment_name or spec.name, context.layout)
    tracking.fail_stale_runs(client, experiment)
    reconcile(client, spec.name)  # versions left by registrations that were killed
    lineage = tracking.lineage(
        job.window,
        spec_hash=spec.hash,
        feature_spec_hash=job.feature_spec.hash,
        seed=spec.seed,
        model_kind=spec.model.kind,
    )
    if computed.warnings:
        lineage["data.warnings"] = "; ".join(computed.warnings)
    if job.pooled:
        lineage["pooled_pairs"] = ",".join(m.pair for m in job.markets)
    recording = _Recording(experiment, lineage, parent_run_id, spec_text, keep_folds)
    run_id, model_uri = _tracked_training(computed, spec, recording, say)
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
    overall = combined(computed.scores)
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment,
        model_name=spec.name,
        version=version,
        metrics=overall.metrics,
        baselines=overall.baselines,
        folds=len(computed.folds),
        out_of_sample=next(iter(computed.out_of_sample.values())),
        per_pair=computed.scores if job.pooled else {},
        warnings=computed.warnings,
    )


@dataclass(frozen=True)
class _Recording:
    """Where and how a training run is recorded."""

    experiment: str
    lineage: dict[str, str]
    parent_run_id: str | None
    spec_text: str | None
    keep_folds: bool


def _tracked_training(
    computed: Computed, spec: ExperimentSpec, recording: _Recording, say: Progress
) -> tuple[str, str]:
    """The training run: its folds, out-of-sample summary, final model's figures and
    the logged model. Returns (run id, model URI); the run has FINISHED when this
    returns."""
    job = computed.job
    run_name = f"{spec.name} {'pooled train' if job.pooled else 'train'}"
    with (
        scratch_dir("train") as tmp,
        tracking.tracked_run(
            experiment_id=recording.experiment,
            run_name=run_name,
            tags=recording.lineage,
            parent_run_id=recording.parent_run_id,
            start_time=computed.started_ms,
        ) as parent,
    ):
        workdir = Path(tmp)
        record.log_spec(spec, recording.spec_text)
        # sent after the model (ml.run_log.held); the folds' figures are not the model's
        with held() as figures, held() as fold_figures:
            entries = [
                record.log_fold(result, job, workdir, fold_figures, keep=recording.keep_folds)
                for result in computed.folds
            ]
            record.log_out_of_sample(
                job,
                computed.out_of_sample,
                computed.scores,
                computed.folds,
                entries,
                workdir,
                figures,
            )
            record.log_final(computed.final, job, figures)
            say("logging the model")
            logged = log_bundle(computed.final, workdir, job.markets[0].candles)
            figures.model_id = logged.model_id
        run_id: str = parent.info.run_id
    return run_id, logged.model_uri
