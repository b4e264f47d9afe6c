"""The unit of training an executor schedules (issue 26): a (markets, fold) job is a plain
value; pickled into another process it fits and predicts exactly what it does here."""

from __future__ import annotations

import multiprocessing
import pickle
import tomllib
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import pytest

from experiments.spec import parse_experiment
from features.data.synthetic import generate
from features.pipeline import build
from ml.fold_training import FoldJob, FoldResult, TrainingJob, walk_forward

SPEC = """
name = "fold_job"
seed = 3

[data]
pair = "BTC/USDT"
timeframe = "1h"

[regime]
n_restarts = 1
n_iter = 20

[model]
kind = "lightgbm"
params = { n_estimators = 20, num_leaves = 7, min_child_samples = 20 }

[walk_forward]
folds = 3
test_size = 200
"""


def _job() -> TrainingJob:
    spec = parse_experiment(tomllib.loads(SPEC), source="test")
    candles, _ = generate(1600, seed=4)
    return TrainingJob.single(
        name=spec.name,
        candles=candles,
        features=build(candles, spec.feature_spec),
        feature_spec=spec.feature_spec,
        config=spec.training,
        pair="BTC/USDT",
        timeframe="1h",
        seed=spec.seed,
        threads=1,
    )


def _predictions_and_metrics(job: FoldJob) -> tuple[pd.DataFrame, dict[str, float]]:
    result: FoldResult = job.run()
    return result.predictions, result.metrics


def test_a_fold_job_run_in_a_spawned_process_equals_the_one_run_here() -> None:
    job = _job()
    folds = job.folds()
    first = FoldJob(job, folds[0])
    # the second fold warm-starts from the first fold's bundle (its regime model), carried
    # in the job
    here = list(walk_forward(job))
    second = FoldJob(job, folds[1], here[0].bundle)
    assert pickle.loads(pickle.dumps(second)).fold == second.fold
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        there = [pool.submit(_predictions_and_metrics, j).result() for j in (first, second)]
    for (predictions, metrics), result in zip(there, here[:2], strict=True):
        pd.testing.assert_frame_equal(predictions, result.predictions, check_exact=True)
        assert metrics == result.metrics


def test_folds_of_one_market_are_its_own_rows_and_a_pooled_job_needs_a_market_named() -> None:
    job = _job()
    fold = job.folds()[-1]
    assert job.rows(fold.test_start, fold.test_end) == {
        "BTC/USDT": slice(fold.test_start, fold.test_end)
    }
    assert job.final_rows() == {"BTC/USDT": slice(0, len(job.candles) - 1)}
    pooled = TrainingJob(
        job.name, job.markets * 2, job.feature_spec, job.config, job.timeframe, job.seed
    )
    assert pooled.pooled
    with pytest.raises(ValueError, match="pools 2 markets"):
        _ = pooled.candles
