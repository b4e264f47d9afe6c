"""Which models a backtest serves: a registered version resolved, one per pair of a
whitelist, and a training run's walk-forward predictions stitched for it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from common.layout import UserDir, pair_to_filename
from features.data import load_candles, reference_candles
from features.pipeline import build
from features.timerange import TimeRange
from ml.bundle import ModelBundle
from ml.forecast_statistics import recent_range
from ml.model_source import RegistryError, load_bundle
from ml.model_uris import model_name
from ml.models import FORECASTERS, forecaster_class
from ml.serving import PAIR_PLACEHOLDER
from ml.serving.columns import upgraded_exposure_columns


def _model_version(client: mlflow.MlflowClient, model: str) -> ModelVersion:
    """``NAME@alias`` or ``NAME/version`` -> the registry's version (a clear error if none)."""
    try:
        if "@" in model:
            name, alias = model.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        if "/" in model:
            name, number = model.split("/", 1)
            return client.get_model_version(name, number)
    except MlflowException as exc:
        raise RegistryError(
            f"model {model!r} is not in the registry ({exc.message.splitlines()[0]})",
            hint="train one (tradingbot train SPEC) and promote it (tradingbot promote NAME --version N)",
        ) from exc
    raise RegistryError(
        f"model {model!r}: write NAME@alias or NAME/version, e.g. btc_1h_hmm_lstm@champion"
    )


def _resolved(version: ModelVersion) -> tuple[str, str, str]:
    return f"models:/{version.name}/{version.version}", str(version.version), str(version.run_id)


def resolve_model(client: mlflow.MlflowClient, model: str) -> tuple[str, str, str]:
    """``NAME@alias`` or ``NAME/version`` -> (models:/ URI, version, training run id)."""
    return _resolved(_model_version(client, model))


PREDICTIONS_ARTIFACT = "walk_forward/predictions.parquet"
# each fold of a training run: rows, windows and figures (runs before it: a child run per fold)
FOLDS_ARTIFACT = "walk_forward/folds.json"


def pooled_predictions_artifact(pair: str) -> str:
    """Where a pooled training run logs one pair's stitched out-of-sample predictions."""
    return f"walk_forward/pairs/{pair_to_filename(pair)}.parquet"


def stitch_walk_forward(
    client: mlflow.MlflowClient,
    model_run_id: str,
    layout: UserDir,
    exchange: str,
    out: Path,
    artifact: str = PREDICTIONS_ARTIFACT,
) -> tuple[Path, str, int]:
    """Out-of-sample predictions of each fold bundle of a training run, stitched in time order.

    Each fold's bundle predicts only its own out-of-sample window (with the history
    before it as input, causally). Training logs exactly these predictions
    (``walk_forward/predictions.parquet``), so they are read from the run; runs trained
    before that are predicted again from their fold runs' bundles.
    Returns (parquet path, Freqtrade timerange, folds).
    """
    run = client.get_run(model_run_id)
    # the run's artefacts, resolved once: a client call by run id reads the whole run again
    artifacts = get_artifact_repository(run.info.artifact_uri)
    listed = _listed(artifacts, FOLDS_ARTIFACT, artifact)
    entries = _read_folds(artifacts, out, listed)
    children = [] if entries else _fold_runs(client, run)  # runs recorded before folds.json
    folds = len(entries) or len(children)
    if not folds:
        raise RegistryError(f"training run {model_run_id} has no folds to walk forward with")
    if artifact in listed:  # what training scored: read, not recomputed
        out.mkdir(parents=True, exist_ok=True)
        stitched = pd.read_parquet(_download(artifacts, artifact, out))
        stitched["date"] = pd.to_datetime(stitched["date"], utc=True)
        kind = run.data.tags.get("model_kind", "")
        outputs_exposure = kind in FORECASTERS and forecaster_class(kind).outputs_exposure
        stitched = upgraded_exposure_columns(stitched, outputs_exposure)
        return _stitched_file(_with_recent_range(stitched, run), out, model_run_id, folds)
    if not children:
        raise RegistryError(f"training run {model_run_id} logged no {artifact}")
    pieces, features_by_spec = [], {}
    for child in children:
        folder = Path(
            mlflow.artifacts.download_artifacts(
                run_id=child.info.run_id,
                artifact_path="fold",
                dst_path=str(out / child.info.run_id),
            )
        )
        bundle = ModelBundle.load(folder / "bundle.joblib")
        window = json.loads((folder / "window.json").read_text())["out_of_sample"]
        meta = bundle.metadata
        key = (meta.pair, meta.timeframe, meta.spec_hash)
        if key not in features_by_spec:
            candles = load_candles(layout, exchange, meta.pair, meta.timeframe)
            references = reference_candles(bundle.feature_spec, layout, exchange, meta.timeframe)
            features_by_spec[key] = build(candles, bundle.feature_spec, meta.timeframe, references)
        features = features_by_spec[key]
        first, last = pd.Timestamp(window["first"]), pd.Timestamp(window["last"])
        upto = features[features["date"] <= last]
        predictions = bundle.predict_features(upto)
        pieces.append(
            predictions[predictions["date"] >= first].drop(columns=["reason"], errors="ignore")
        )
    stitched = pd.concat(pieces, ignore_index=True)
    return _stitched_file(stitched, out, model_run_id, folds)


def logged_folds(client: mlflow.MlflowClient, run_id: str, out: Path) -> list[dict[str, Any]]:
    """The folds a training run recorded (``walk_forward/folds.json``: each fold's rows,
    windows and figures, in fold order), downloaded to ``out``; empty for a run recorded
    before it."""
    artifacts = get_artifact_repository(client.get_run(run_id).info.artifact_uri)
    return _read_folds(artifacts, out, _listed(artifacts, FOLDS_ARTIFACT))


def _listed(artifacts: ArtifactRepository, *paths: str) -> set[str]:
    """The artefacts beside ``paths`` (each folder listed once: a store call each)."""
    folders = {path.rsplit("/", 1)[0] for path in paths}
    return {a.path for folder in folders for a in artifacts.list_artifacts(folder)}


def _read_folds(artifacts: ArtifactRepository, out: Path, listed: set[str]) -> list[dict[str, Any]]:
    if FOLDS_ARTIFACT not in listed:
        return []
    out.mkdir(parents=True, exist_ok=True)
    path = _download(artifacts, FOLDS_ARTIFACT, out)
    folds: list[dict[str, Any]] = json.loads(path.read_text())
    return folds


def _download(artifacts: ArtifactRepository, path: str, out: Path) -> Path:
    return Path(artifacts.download_artifacts(path, str(out)))  # type: ignore[no-untyped-call]


def _fold_runs(client: mlflow.MlflowClient, run: mlflow.entities.Run) -> list[Any]:
    """The child run of each fold, in fold order, of a run recorded before folds.json."""
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    return sorted(children, key=lambda child: int(child.data.tags.get("fold", "0")))


def _with_recent_range(stitched: pd.DataFrame, run: mlflow.entities.Run) -> pd.DataFrame:
    """The forecast's recent range over the stitched out-of-sample rows, with the
    training run's ``[lifetime] fit_live_predictions_candles`` (ml.forecast_statistics)."""
    setting = run.data.params.get("lifetime.fit_live_predictions_candles", "None")
    candles = None if setting in ("None", "") else int(setting)
    counted = np.ones(len(stitched), dtype=bool)
    # the forecast's columns (not the dates, which as an array are objects, one by one)
    numeric = stitched.select_dtypes("number").columns
    columns = {str(name): stitched[name].to_numpy() for name in numeric}
    return stitched.assign(**recent_range(columns, counted, candles))


def _stitched_file(
    stitched: pd.DataFrame, out: Path, model_run_id: str, folds: int
) -> tuple[Path, str, int]:
    stitched = stitched.drop(columns=["reason"], errors="ignore").sort_values("date")
    if stitched["date"].duplicated().any():
        raise RegistryError(f"fold windows of run {model_run_id} overlap: cannot stitch them")
    path = out / "walk_forward_predictions.parquet"
    out.mkdir(parents=True, exist_ok=True)
    stitched.to_parquet(path, index=False)
    start = stitched["date"].iloc[0].floor("D")
    end = stitched["date"].iloc[-1].floor("D") + pd.Timedelta(days=1)
    return path, f"{start:%Y%m%d}-{end:%Y%m%d}", folds


def resolve_whitelist(
    client: mlflow.MlflowClient, model: str, pairs: Sequence[str]
) -> tuple[str, dict[str, tuple[str, str, str]]]:
    """``NAME@alias`` for a whitelist -> (URI template ``models:/NAME__{pair}@alias``,
    {pair: (URI, version, training run)}), every pair's model named by the rule of
    :func:`ml.model_uris.model_name`. Every pair without one is named in the error."""
    name, alias = model.split("@", 1) if "@" in model else (model, "champion")
    resolved, missing = {}, []
    for pair in pairs:
        try:
            resolved[pair] = resolve_model(client, f"{model_name(name, pair)}@{alias}")
        except RegistryError:
            missing.append(f"{pair} (no {model_name(name, pair)}@{alias})")
    if missing:
        raise RegistryError(
            f"the whitelist has pairs model {name} has no version for: {', '.join(missing)}",
            hint=f"train them (a spec with [data] pairs), promote them "
            f"(tradingbot promote {name} --reason ...), or leave them out of --pairs",
        )
    return f"models:/{name}__{PAIR_PLACEHOLDER}@{alias}", resolved


@dataclass(frozen=True)
class ServedModels:
    """What serves the backtest: a model URI (a template with ``{pair}`` for a whitelist),
    its version(s) and training run; per pair (URI, version, training run) for a whitelist."""

    uri: str | None = None
    version: str | None = None
    training_run: str | None = None
    by_pair: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    pooled: bool = False  # one version serving every pair of the whitelist
    pairs: tuple[str, ...] = ()  # a pooled model's whitelist in this backtest


def _registered(client: mlflow.MlflowClient, model: str) -> ModelVersion | None:
    """The version ``model`` names when its name is a registered model; None when it is
    not (a whitelist's per-pair models are registered as ``NAME__<pair>``)."""
    try:
        client.get_registered_model(model.split("@", 1)[0].split("/", 1)[0])
    except MlflowException:
        return None
    return _model_version(client, model)


def _pooled(model: str, version: ModelVersion, whitelist: tuple[str, ...]) -> ServedModels:
    """A pooled model (one version serving several pairs, see ml.pooled) for the
    whitelist; a whitelist pair it was not trained on is an error."""
    trained = version.tags["pooled_pairs"].split(",")
    missing = [pair for pair in whitelist if pair not in trained]
    if missing:
        raise RegistryError(
            f"pooled model {model} was not trained on {', '.join(missing)}",
            hint=f"its pairs: {', '.join(trained)}; leave the others out of --pairs",
        )
    return ServedModels(*_resolved(version), pooled=True, pairs=whitelist)


def serve(
    client: mlflow.MlflowClient, model: str | None, whitelist: tuple[str, ...]
) -> ServedModels:
    """Resolve ``model`` (none: a strategy without a model) for one pair or a whitelist."""
    if not model:
        return ServedModels()
    registered = _registered(client, model)
    if registered is not None and "pooled_pairs" in registered.tags:
        return _pooled(model, registered, whitelist)
    if whitelist:
        uri, by_pair = resolve_whitelist(client, model, whitelist)
        version = ",".join(f"{p}:{v}" for p, (_, v, _) in by_pair.items())
        return ServedModels(uri, version, None, by_pair)
    # resolved once; a name that is not registered gets _model_version's error
    return ServedModels(*_resolved(registered or _model_version(client, model)))


@dataclass(frozen=True)
class WalkForwardInputs:
    """The stitched out-of-sample predictions (one file, or one per pair of a whitelist),
    the timerange their folds have in common, and how many folds there were."""

    predictions: Path | None
    by_pair: dict[str, Path]
    timerange: str
    folds: int


def walk_forward_inputs(
    client: mlflow.MlflowClient, served: ServedModels, pair: str, layout: UserDir, exchange: str
) -> WalkForwardInputs:
    """Each served model's training run's fold predictions, stitched, over the span every
    pair's folds cover."""
    if not served.training_run and not served.by_pair:
        raise RegistryError(
            "--walk-forward needs --model NAME@alias (its training run holds the folds)"
        )
    if served.pooled:  # one run, each pair's out-of-sample predictions in its own file
        runs = [
            (p, served.training_run, pooled_predictions_artifact(p))
            for p in served.pairs or (pair,)
        ]
    elif served.by_pair:
        runs = [(p, r, PREDICTIONS_ARTIFACT) for p, (_, _, r) in served.by_pair.items()]
    else:
        runs = [(pair, served.training_run, PREDICTIONS_ARTIFACT)]
    stitched_by_pair: dict[str, Path] = {}
    spans, folds = [], 0
    for key, training_run, artifact in runs:
        workdir = layout.walk_forward(str(training_run))
        if served.pooled:
            workdir = workdir / pair_to_filename(key)
        stitched, span, count = stitch_walk_forward(
            client, str(training_run), layout, exchange, workdir, artifact
        )
        stitched_by_pair[key], folds = stitched, max(folds, count)
        spans.append(TimeRange.parse(span))
    start = max(s.start for s in spans if s.start is not None)
    end = min(s.end for s in spans if s.end is not None)
    if start >= end:
        raise RegistryError("the pairs' walk-forward windows do not overlap")
    timerange = str(TimeRange(start=start, end=end))
    if served.by_pair or served.pooled:
        return WalkForwardInputs(None, stitched_by_pair, timerange, folds)
    return WalkForwardInputs(stitched_by_pair[pair], {}, timerange, folds)


def served_regimes(
    model_uri: str | None,
    candles: pd.DataFrame,
    window: pd.DataFrame,
    end: datetime,
    layout: UserDir,
    timeframe: str,
) -> pd.Series:
    """The regime names the backtest's model (``model_uri``) gave the candles of
    ``window`` (those before ``end``), computed on all ``candles`` before ``end``; ""
    for every candle without a model or without regimes."""
    regimes = pd.Series([""] * len(window))
    if not model_uri:
        return regimes
    bundle = load_bundle(model_uri)
    if bundle.regime_model is None:
        return regimes
    upto = candles[candles["date"] < pd.Timestamp(end)].reset_index(drop=True)
    others = reference_candles(bundle.feature_spec, layout, "binance", timeframe)
    labels = bundle.regimes(bundle.features(upto, others))["regime"]
    return labels.iloc[len(upto) - len(window) :].reset_index(drop=True)
