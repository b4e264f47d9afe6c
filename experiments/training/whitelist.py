"""Training a whitelist spec: one model per pair, under one MLflow parent run, in worker
processes when asked (``tradingbot train --jobs N``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlflow.tracking import MlflowClient

from common.context import RunContext
from common.layout import pair_to_filename
from experiments.spec import ExperimentSpec
from experiments.training.pipeline import Progress, TrainResult, progress_steps, train
from features.data.store import require_pairs
from ml import tracking


@dataclass(frozen=True)
class WhitelistResult:
    """A whitelist spec's training: the parent run and each pair's own result."""

    run_id: str
    experiment_id: str
    spec_name: str
    pairs: dict[str, TrainResult]


def _parent_run(
    client: MlflowClient, experiment: str, spec: ExperimentSpec, spec_text: str | None
) -> str:
    """The whitelist's parent run, with the spec it trains; returns its id."""
    data = spec.data
    parent = client.create_run(
        experiment,
        run_name=f"{spec.name} whitelist ({len(data.whitelist)} pairs)",
        tags={
            "spec_hash": spec.hash,
            "whitelist": ",".join(data.whitelist),
            "git_commit": tracking.git_commit(),
            "seed": str(spec.seed),
            "model_kind": spec.model.kind,
            **tracking.process_tags(),
        },
    )
    parent_id: str = parent.info.run_id
    try:
        client.log_dict(parent_id, spec.model_dump(mode="json"), "spec/spec.json")
        if spec_text is not None:
            client.log_text(parent_id, spec_text, "spec/spec.toml")
    except BaseException:
        client.set_terminated(parent_id, status="FAILED")
        raise
    return parent_id


def train_whitelist(
    spec: ExperimentSpec,
    *,
    context: RunContext,
    spec_text: str | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
) -> WhitelistResult:
    """One model per pair of ``spec``'s whitelist, each registered as
    :func:`ml.model_uris.model_name` (``<spec>__<BASE>_<QUOTE>``) with alias
    ``challenger``. One MLflow parent run in the spec's experiment holds the pairs'
    training runs (which hold their folds) and a per-pair summary (``<KEY>.calmar``...).

    Every pair's candles are checked before anything is recorded. A failure ends the
    parent run FAILED; the pairs trained before it stay registered (each on its own is
    complete) and a second call trains every pair again. ``jobs`` > 1: pairs are trained
    in that many worker processes at once, each with its share of the CPU threads."""
    layout, tracking_uri = context.layout, context.tracking_uri
    data = spec.data
    require_pairs(layout, data.exchange, data.whitelist, data.timeframe)
    client = tracking.configure(tracking_uri, layout)
    experiment = tracking.experiment_id(client, spec.name, layout)
    tracking.fail_stale_runs(client, experiment)
    parent_id = _parent_run(client, experiment, spec, spec_text)
    results: dict[str, TrainResult] = {}
    try:
        shared: dict[str, Any] = {
            "context": context,
            "spec_text": spec_text,
            "experiment_name": spec.name,
            "parent_run_id": parent_id,
        }
        if jobs > 1 and len(data.whitelist) > 1:
            results = _train_in_processes(spec, shared, jobs, progress)
        else:
            for pair in data.whitelist:
                results[pair] = train(spec.for_pair(pair), progress=progress, **shared)
        for pair in data.whitelist:
            for key, value in results[pair].metrics.items():
                if np.isfinite(value):
                    client.log_metric(parent_id, f"{pair_to_filename(pair)}.{key}", float(value))
    except KeyboardInterrupt:
        client.set_terminated(parent_id, status="KILLED")
        raise
    except BaseException:
        client.set_terminated(parent_id, status="FAILED")
        raise
    client.set_terminated(parent_id, status="FINISHED")
    return WhitelistResult(parent_id, experiment, spec.name, results)


def _train_pair(spec_json: str, pair: str, threads: int, shared: dict[str, Any]) -> TrainResult:
    """A worker process's part of :func:`train_whitelist`: one pair."""
    from threadpoolctl import threadpool_limits

    from ml.models import forecaster_class

    spec = ExperimentSpec.model_validate_json(spec_json)
    if forecaster_class(spec.model.kind).uses_torch:
        import torch

        torch.set_num_threads(threads)
    threadpool_limits(threads)  # BLAS/OpenMP of numpy and scikit-learn (the HMM)
    return train(spec.for_pair(pair), threads=threads, **shared)


def _train_in_processes(
    spec: ExperimentSpec, shared: dict[str, Any], jobs: int, progress: Progress | None
) -> dict[str, TrainResult]:
    """Train the whitelist's pairs ``jobs`` at a time in spawned processes; the first
    failure cancels the pairs not started yet and is raised."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    pairs = list(spec.data.whitelist)
    workers = min(jobs, len(pairs))
    threads = max(1, (os.cpu_count() or 1) // workers)
    steps = progress_steps(spec)
    say = progress or (lambda _text: None)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(_train_pair, spec.model_dump_json(), pair, threads, shared): pair
            for pair in pairs
        }
        results: dict[str, TrainResult] = {}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    results[futures[future]] = future.result()  # raises the pair's error
                    for _ in range(steps):
                        say(f"{futures[future]} trained")
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return {pair: results[pair] for pair in pairs}
