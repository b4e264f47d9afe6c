"""What a training computes, apart from what records it: the spec's candles and features,
the walk-forward folds, the stitched out-of-sample predictions and their scores, and the
final model, as one picklable :class:`Computed`.

Nothing here imports MLflow. A whitelist's pairs on this machine are computed in a local
pool's workers, forked from a server that imported only this (half the seconds before
the first pair starts, measured in docs/BACKTESTING.md), and recorded by the calling
process as each comes back (:func:`experiments.training.pipeline.record`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from common.executors import Executor
from common.layout import UserDir
from experiments.spec import ExperimentSpec
from experiments.training.data import data_warnings, training_job
from ml.bundle import Continuation, ModelBundle
from ml.fold_training import FoldResult, Scores, TrainingJob, fit_final, walk_forward

Progress = Callable[[str], None]
RECORDING_STEPS = 2  # of a training's progress: logging and registering its model


def progress_steps(spec: ExperimentSpec) -> int:
    """How many times a training calls ``progress`` for one model: features, each fold
    and the final fit while it computes, then logging and registration as it is
    recorded."""
    return 2 + spec.walk_forward.folds + RECORDING_STEPS


@dataclass(frozen=True)
class Computed:
    """One model's training, computed and not yet recorded."""

    job: TrainingJob
    folds: list[FoldResult]
    # the stitched out-of-sample predictions of the folds, per market, and their scores
    out_of_sample: dict[str, pd.DataFrame]
    scores: dict[str, Scores]
    final: ModelBundle  # fitted on every candle whose target is known: the one registered
    warnings: list[str]  # about the data it learnt from
    started_ms: int  # when the computation began (ms since the epoch): its run's start


def compute(
    spec: ExperimentSpec,
    layout: UserDir,
    *,
    threads: int | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
    continued: ModelBundle | None = None,
) -> Computed:
    """Train a single-pair or pooled spec without recording it. ``threads``: this
    training's share of the CPU threads; ``executor``: where independent folds run (see
    :func:`ml.fold_training.walk_forward`); ``continued``: with ``[lifetime]
    continual_learning``, the final model continues this bundle's forecaster (a
    retrain's champion) instead of the last fold's; the folds never do (it was trained
    on their out-of-sample candles)."""
    started_ms = int(time.time() * 1000)
    say = progress or (lambda _text: None)
    job = training_job(spec, layout, threads, say)
    warnings = data_warnings(layout, spec.data.exchange, job.timeframe, job.markets)
    folds: list[FoldResult] = []
    for result in walk_forward(job, executor):
        folds.append(result)
        say(f"fold {result.fold.index + 1}/{job.config.walk_forward.folds} done")
    out_of_sample = {
        market.pair: pd.concat([result.per_market[market.pair].predictions for result in folds])
        for market in job.markets
    }
    say("fitting the final model on the whole window")
    last = folds[-1].bundle if folds else None
    final = fit_final(job, last, _champion(continued))
    return Computed(
        job=job,
        folds=folds,
        out_of_sample=out_of_sample,
        scores=job.score(out_of_sample),
        final=final,
        warnings=warnings,
        started_ms=started_ms,
    )


def _champion(bundle: ModelBundle | None) -> Continuation | None:
    if bundle is None:
        return None
    meta = bundle.metadata
    return bundle.forecaster, f"{meta.name} trained to {meta.train_window.last:%Y-%m-%d %H:%M}"
