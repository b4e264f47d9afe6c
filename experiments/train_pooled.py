"""``tradingbot train`` of a spec with ``[data] pooling = "pooled"``: one model over every
pair of the whitelist (see :mod:`ml.pooled` for how it is fitted).

Walk-forward folds are cut on the pairs' common calendar (every candle time any pair
has), so each fold trains on every pair's candles before its test block and is tested
on every pair's candles inside it: causal across pairs. Each fold and the whole
out-of-sample stretch are scored per pair against the same baselines as a single-pair
model (buy and hold, the trend rules, on the same candles and fees); the run's
``overall.<metric>`` is the mean over the pairs and ``<BASE>_<QUOTE>.<metric>`` each
pair's. The model is registered under the spec's own name (one model, not one per
pair), with the pairs in its version's ``pooled_pairs`` tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from common.atomic import scratch_dir
from common.errors import SpecError
from experiments.served_models import pooled_predictions_artifact
from experiments.spec import ExperimentSpec
from experiments.spec_data import cached_features, spec_candles
from experiments.train import Progress, TrainResult
from features.candles import DataWindow
from features.data.store import pair_to_filename, require_pairs
from features.timeframes import timeframe_to_seconds
from ml import tracking
from ml.bundle import ModelBundle
from ml.fold_training import Scores, score
from ml.metrics import ANNUALISED
from ml.pooled import PairData, fit_pooled_bundle, pooled_window
from ml.registry import log_bundle, reconcile, register_finished_run
from ml.run_log import RunLog
from ml.walkforward import make_folds

# what the pooled run's overall.* and baseline.* metrics are (each pair's: <BASE>_<QUOTE>.*)
AGGREGATE_TAG = "overall.aggregate"
MEAN = "mean of the pairs' figures (not one equity curve's)"


@dataclass(frozen=True)
class PooledJob:
    """What every fit of a pooled run shares."""

    spec: ExperimentSpec
    data: list[PairData]
    calendar: np.ndarray  # every candle time of any pair (datetime64[ns]), ascending
    window: DataWindow  # of every pair's candles (pairs joined by commas)

    def rows(self, first: int, stop: int) -> dict[str, slice]:
        """Each pair's rows whose candle lies in ``calendar[first:stop]``."""
        start, end = self.calendar[first], self.calendar[stop - 1]
        out = {}
        for item in self.data:
            dates = item.candles["date"].to_numpy(dtype="datetime64[ns]")
            out[item.pair] = slice(
                int(np.searchsorted(dates, start, "left")),
                int(np.searchsorted(dates, end, "right")),
            )
        return out

    def fit(self, rows: dict[str, slice], previous: ModelBundle | None) -> ModelBundle:
        spec = self.spec
        return fit_pooled_bundle(
            name=spec.name,
            data=self.data,
            rows=rows,
            feature_spec=spec.feature_spec,
            config=spec.training,
            seed=spec.seed,
            timeframe=spec.data.timeframe,
            data_sha256=self.window.sha256,
            previous=None if previous is None else previous.regime_model,
        )

    def predict(self, bundle: ModelBundle, item: PairData, rows: slice) -> pd.DataFrame:
        """One pair's predictions for ``rows``, from the history up to their end."""
        bound = bundle.for_pair(item.pair)
        features = bound.scaled(item.features.iloc[: rows.stop])
        return bound.predict_features(features).iloc[rows]


def _job(spec: ExperimentSpec, userdir: Path) -> PooledJob:
    data = []
    for pair in spec.data.whitelist:
        one = spec.for_pair(pair).data
        candles = spec_candles(one, userdir)
        features = cached_features(
            candles, spec.feature_spec, userdir, pair, one.timeframe, one.exchange
        )
        data.append(PairData(pair, candles, features))
    calendar = np.unique(
        np.concatenate([d.candles["date"].to_numpy(dtype="datetime64[ns]") for d in data])
    )
    everything = {d.pair: slice(0, len(d.candles)) for d in data}
    window = pooled_window(data, everything, spec.data.timeframe)
    return PooledJob(spec, data, calendar, window)


@dataclass
class _Scores:
    per_pair: dict[str, Scores] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Each pair's metrics (``<BASE>_<QUOTE>.<name>``) and their means (``<name>``)."""
        out: dict[str, float] = {}
        names = next(iter(self.per_pair.values())).metrics
        for name in names:
            values = [s.metrics[name] for s in self.per_pair.values()]
            out[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        for pair, scores in self.per_pair.items():
            out.update({f"{pair_to_filename(pair)}.{k}": v for k, v in scores.metrics.items()})
        return out

    def baselines(self) -> dict[str, dict[str, float]]:
        """Each baseline's metrics, averaged over the pairs."""
        first = next(iter(self.per_pair.values())).baselines
        return {
            name: {
                key: float(np.nanmean([s.baselines[name][key] for s in self.per_pair.values()]))
                for key in values
            }
            for name, values in first.items()
        }


def _walk_forward(
    job: PooledJob, experiment: str, lineage: dict[str, str], say: Progress
) -> tuple[dict[str, list[pd.DataFrame]], ModelBundle | None, int]:
    """Every fold fitted on all pairs, scored per pair, recorded as a child run. Returns
    each pair's out-of-sample pieces, the last fold's bundle and the number of folds."""
    config = job.spec.training
    per_day = 86_400 / timeframe_to_seconds(job.spec.data.timeframe)
    folds = make_folds(
        len(job.calendar), config.walk_forward, config.target.horizon, per_day, job.calendar
    )
    stitched: dict[str, list[pd.DataFrame]] = {item.pair: [] for item in job.data}
    previous: ModelBundle | None = None
    for fold in folds:
        bundle = previous = job.fit(job.rows(fold.train_start, fold.train_end), previous)
        tested = job.rows(fold.test_start, fold.test_end)
        scores = _Scores()
        for item in job.data:
            predictions = job.predict(bundle, item, tested[item.pair])
            stitched[item.pair].append(predictions)
            scores.per_pair[item.pair] = score(
                predictions, item.candles, config, job.spec.data.timeframe
            )
        with tracking.tracked_run(
            experiment_id=experiment,
            run_name=f"fold {fold.index}",
            nested=True,
            tags={**lineage, "fold": str(fold.index)},
        ):
            figures = {  # a fold's own figures: not annualised (ml.metrics.not_annualised)
                key: value
                for key, value in scores.metrics().items()
                if key.rsplit(".", 1)[-1] not in ANNUALISED
            }
            RunLog().params({"fold": fold.index}).metrics(figures).tags(
                {"fold.train_last": str(job.calendar[fold.train_end - 1])}
            ).send()
        say(f"fold {fold.index + 1}/{len(folds)} done")
    return stitched, previous, len(folds)


def train_pooled(
    spec: ExperimentSpec,
    *,
    userdir: Path,
    tracking_uri: str,
    spec_text: str | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, record and register one pooled model for the spec's whitelist."""
    say = progress or (lambda _text: None)
    model = spec.training.model
    if model.estimator(spec.training.target.task, spec.seed, 1).context_rows:
        raise SpecError(
            f"{model.kind} reads sequences of consecutive rows: it cannot be pooled",
            hint='use pooling = "per_pair" for it, or a model without sequences (lightgbm)',
        )
    require_pairs(userdir, spec.data.exchange, spec.data.whitelist, spec.data.timeframe)
    job = _job(spec, userdir)
    say("features of every pair")
    client = tracking.configure(tracking_uri, userdir)
    experiment = tracking.experiment_id(client, spec.name, userdir)
    tracking.fail_stale_runs(client, experiment)
    reconcile(client, spec.name)
    lineage = tracking.lineage(
        job.window,
        spec_hash=spec.hash,
        feature_spec_hash=spec.feature_spec.hash,
        seed=spec.seed,
        model_kind=spec.model.kind,
    )
    lineage["pooled_pairs"] = ",".join(spec.data.whitelist)
    run_id, model_uri, overall, folds = _tracked_training(job, experiment, lineage, spec_text, say)
    say("registering the model")
    tags = {
        "spec_hash": spec.hash,
        "data_sha256": job.window.sha256,
        "pooled_pairs": lineage["pooled_pairs"],
    }
    version = register_finished_run(client, spec.name, run_id, model_uri, tags=tags)
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment,
        model_name=spec.name,
        version=version,
        metrics=overall.metrics(),
        baselines=overall.baselines(),
        folds=folds,
        per_pair=overall.per_pair,
    )


def _tracked_training(
    job: PooledJob,
    experiment: str,
    lineage: dict[str, str],
    spec_text: str | None,
    say: Progress,
) -> tuple[str, str, _Scores, int]:
    """The pooled training run: folds, out-of-sample scores, the final fit and the logged
    model. Returns (run id, model URI, scores, folds); the run has FINISHED by then."""
    spec = job.spec
    with (
        scratch_dir("train") as tmp,
        tracking.tracked_run(
            experiment_id=experiment, run_name=f"{spec.name} pooled train", tags=lineage
        ) as run,
    ):
        if spec_text is not None:
            mlflow.log_text(spec_text, "spec/spec.toml")
        mlflow.log_dict(spec.model_dump(mode="json"), "spec/spec.json")
        stitched, last, folds = _walk_forward(job, experiment, lineage, say)
        overall = _log_out_of_sample(job, stitched, Path(tmp))
        say("fitting the final model on the whole window")
        horizon = spec.training.target.horizon
        final_rows = {d.pair: slice(0, len(d.candles) - horizon) for d in job.data}
        bundle = job.fit(final_rows, last)
        say("logging the model")
        model_uri, _ = log_bundle(bundle, Path(tmp), job.data[0].candles)
        run_id: str = run.info.run_id
    return run_id, model_uri, overall, folds


def _log_out_of_sample(
    job: PooledJob, stitched: dict[str, list[pd.DataFrame]], workdir: Path
) -> _Scores:
    """Each pair's stitched out-of-sample predictions scored and logged."""
    overall = _Scores()
    for item in job.data:
        predictions = pd.concat(stitched[item.pair])
        overall.per_pair[item.pair] = score(
            predictions, item.candles, job.spec.training, job.spec.data.timeframe
        )
        artifact = pooled_predictions_artifact(item.pair)  # what a walk-forward backtest reads
        path = workdir / artifact.rsplit("/", 1)[1]
        predictions.drop(columns=["reason"], errors="ignore").to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=artifact.rsplit("/", 1)[0])
    record = RunLog().metrics(overall.metrics(), prefix="overall.").tags({AGGREGATE_TAG: MEAN})
    for name, values in overall.baselines().items():
        record.metrics(values, prefix=f"baseline.{name}.")
    record.send()
    return overall
