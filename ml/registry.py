"""The MLflow model registry: bundles as pyfunc models, aliases, promotion. Loading a
registered bundle is :mod:`ml.model_source` (a trusted store, the digest checked first).

A bundle is logged as a pyfunc model whose ``predict`` takes a candle frame and
returns the bundle's prediction frame. ``pip_requirements`` are explicit (MLflow
would otherwise spend seconds inferring them) and the ``features`` and ``ml``
packages travel with the model as code, so MLflow's own ``pyfunc.load_model`` works
wherever its requirements are installed (our own loading never runs that code).
Registry stages are deprecated: only aliases (``challenger``, ``champion``) are used.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc.model import PythonModel
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

from ml.bundle import MODEL_PACKAGES, BundleError, ModelBundle, installed_version
from ml.evaluation import Gate, promotion_gate, run_summary
from ml.model_source import BUNDLE_ARTIFACT, BUNDLE_DIGEST_TAG, RegistryError, load_bundle

CHAMPION = "champion"
CHALLENGER = "challenger"
FINISHED = "FINISHED"
MODEL_URI_TAG = "tradingbot.model_uri"
REGISTRATION_TAG = "tradingbot.registration"
GATE_TAG = "tradingbot.gate"
COMPLETE = "complete"
log = logging.getLogger("tradingbot.registry")
REQUIREMENTS = (*MODEL_PACKAGES, "pyarrow", "pydantic", "joblib", "mlflow")
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class BundleModel(PythonModel):
    """pyfunc wrapper: candles in, the bundle's prediction frame out."""

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts["bundle"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        pair = (params or {}).get("pair")  # a pooled model's pair (its scaling)
        bundle = self.bundle.for_pair(str(pair)) if pair else self.bundle
        return bundle.predict(pd.DataFrame(model_input))


def pip_requirements() -> list[str]:
    """:data:`REQUIREMENTS`, each pinned to its installed version where it has one."""
    return [
        f"{name}=={version}" if (version := installed_version(name)) else name
        for name in REQUIREMENTS
    ]


def log_bundle_model(bundle_path: Path, signature: ModelSignature | None = None) -> tuple[str, str]:
    """Log the bundle file as the active run's pyfunc model; return its model URI and
    MLflow's id of the logged model.

    MLflow links every metric the run already has at step 0 to the logged model, asking
    the store for each metric's history: a run's figures are best sent after this, with
    the model's id (:func:`ml.run_log.held`), in one call."""
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_logger.level
    pyfunc_logger.setLevel(logging.ERROR)  # the cloudpickle notice: our own class, our own file
    try:
        with warnings.catch_warnings():
            # The schema is what the UI shows; an example would copy candles into every model.
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=BundleModel(),
                artifacts={"bundle": str(bundle_path)},
                pip_requirements=pip_requirements(),
                code_paths=[str(PACKAGE_ROOT / p) for p in ("common", "features", "ml")],
                signature=signature,
            )
    finally:
        pyfunc_logger.setLevel(level)
    return str(info.model_uri), str(info.model_id)


# Candles enough for every shipped feature's warm-up, so the inferred output has values.
SIGNATURE_CANDLES = 1500


def _utc_friendly(signature: ModelSignature) -> ModelSignature:
    """MLflow enforces an input ``datetime`` column by refusing time-zone-aware values,
    and our candles' ``date`` is UTC-aware: declare input dates as ``any`` instead."""
    if signature.inputs is None:
        return signature
    any_type = AnyType()  # type: ignore[no-untyped-call]
    columns = [
        ColSpec(any_type, column.name, required=column.required)
        if column.type == DataType.datetime
        else column
        for column in signature.inputs.inputs
    ]
    return ModelSignature(
        inputs=Schema(columns), outputs=signature.outputs, params=signature.params
    )


class LoggedBundle(NamedTuple):
    model_uri: str
    sha256: str  # of the bundle file
    model_id: str  # MLflow's id of the logged model


def log_bundle(
    bundle: ModelBundle, workdir: Path, candles: pd.DataFrame | None = None
) -> LoggedBundle:
    """Save ``bundle`` and log it as the active run's pyfunc model. With ``candles``, the model's input/output schema (candles in,
    prediction frame out) is inferred from its last rows and logged as the signature,
    which the MLflow UI shows on the version page. Nothing is registered: see
    :func:`register_finished_run`."""
    bundle_path = workdir / Path(BUNDLE_ARTIFACT).name  # where load_bundle reads it
    sha = bundle.save(bundle_path)
    mlflow.set_tag(BUNDLE_DIGEST_TAG, sha)
    signature = None
    # (a model with reference pairs needs their candles too: no example, no signature)
    if candles is not None and len(candles) and not bundle.reference_pairs:
        example = candles.tail(SIGNATURE_CANDLES).reset_index(drop=True)
        # a pooled model is asked for one of its pairs: ``params={"pair": ...}``
        params = {"pair": bundle.metadata.pairs[0]} if bundle.pooled else None
        served = bundle.for_pair(params["pair"]) if params else bundle
        signature = _utc_friendly(infer_signature(example, served.predict(example), params=params))
    model_uri, model_id = log_bundle_model(bundle_path, signature)
    mlflow.set_tag(MODEL_URI_TAG, model_uri)
    return LoggedBundle(model_uri, sha, model_id)


def version_of_run(
    client: MlflowClient, name: str, run_id: str, key: dict[str, str] | None = None
) -> ModelVersion | None:
    """The oldest version of ``name`` registered from ``run_id`` whose tags hold ``key``."""
    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    matching = [v for v in versions if all(v.tags.get(k) == w for k, w in (key or {}).items())]
    return min(matching, key=lambda v: int(v.version)) if matching else None


def register_finished_run(
    client: MlflowClient,
    name: str,
    run_id: str,
    model_uri: str,
    tags: dict[str, str],
    key: dict[str, str] | None = None,
    gate: Gate | None = None,
) -> int:
    """Register the model of a FINISHED run under ``name`` with alias ``challenger``.

    ``gate``: the verdict of :func:`ml.evaluation.promotion_gate` on the run, when
    the registration is gated: recorded as the version's tag ``tradingbot.gate``; a
    refused version is registered (its lineage kept) without the alias.

    Last and idempotent: a version is only ever made from a run that finished, and
    a second call for the same run and ``key`` tags (a retry after a kill; a tuning
    run registers one version per best trial) reuses that version instead of
    registering again. The version's ``tradingbot.registration = complete`` tag,
    written last, says the registration went through."""
    run = client.get_run(run_id)
    if run.info.status != FINISHED:
        raise RegistryError(
            f"run {run_id} is {run.info.status}, not FINISHED: its model is not registered"
        )
    version = version_of_run(client, name, run_id, key)
    number = str(
        version.version
        if version is not None
        else mlflow.register_model(
            model_uri, name, tags={**tags, **(key or {}), "run_id": run_id}
        ).version
    )
    if gate is not None:
        client.set_model_version_tag(name, number, GATE_TAG, gate.verdict)
    if gate is None or gate.passed:
        client.set_registered_model_alias(name, CHALLENGER, number)
    client.set_tag(run_id, "registered_version", number)
    summary = run_summary(run.data.metrics)
    if summary:
        client.update_model_version(name, number, description=summary)
    client.set_model_version_tag(name, number, REGISTRATION_TAG, COMPLETE)
    return int(number)


def is_complete(client: MlflowClient, version: ModelVersion) -> bool:
    """Did this version's registration go through? Versions registered before the
    completion tag existed count when their run finished."""
    if version.tags.get(REGISTRATION_TAG) == COMPLETE:
        return True
    if not version.run_id:
        return False
    try:
        return bool(client.get_run(version.run_id).info.status == FINISHED)
    except MlflowException:
        return False


def reconcile(client: MlflowClient, name: str) -> list[str]:
    """Clean up what killed registrations left. A version whose registration did not
    complete is completed when its run finished, deleted (with any alias on it) when
    its run failed, was killed or is gone, and left alone while its run is still
    running. Complete versions are never touched. Returns one line per change."""
    done: list[str] = []
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return done
    for version in versions:
        if version.tags.get(REGISTRATION_TAG) == COMPLETE:
            continue
        try:
            status = client.get_run(version.run_id).info.status if version.run_id else "missing"
        except MlflowException:
            status = "missing"
        if status == FINISHED:
            client.set_model_version_tag(name, version.version, REGISTRATION_TAG, COMPLETE)
            done.append(f"{name} v{version.version}: registration completed")
        elif status != "RUNNING":
            client.delete_model_version(name, version.version)
            done.append(f"{name} v{version.version}: deleted (its run is {status})")
    for line in done:
        log.warning("registry reconcile: %s", line)
    return done


def purge_old_versions(client: MlflowClient, name: str, keep: int) -> list[str]:
    """FreqAI's ``purge_old_models``: keep the ``keep`` newest complete versions of
    ``name`` and every version an alias points at (``champion``, ``challenger``, any
    other); delete the rest, their registry entry and their model's files (the logged
    model and its artefacts). Their training runs stay, with the metrics, the spec and
    the out-of-sample predictions: the record outlives the model. Returns one line per
    deleted version."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    aliased = set(client.get_registered_model(name).aliases.values())
    versions = sorted(
        (v for v in client.search_model_versions(f"name = '{name}'") if is_complete(client, v)),
        key=lambda v: int(v.version),
        reverse=True,
    )
    done = []
    for version in versions[keep:]:
        if str(version.version) in {str(a) for a in aliased}:
            continue
        source = str(version.source or "")
        if source.startswith("models:/m-"):  # the logged model (MLflow 3): its files go
            model_id = source.removeprefix("models:/").split("/")[0]
            with contextlib.suppress(MlflowException):
                location = client.get_logged_model(model_id).artifact_location
                get_artifact_repository(location).delete_artifacts()  # type: ignore[no-untyped-call]
                client.delete_logged_model(model_id)
        client.delete_model_version(name, version.version)
        done.append(f"{name} v{version.version}: purged (its run {version.run_id} stays)")
    for line in done:
        log.info("registry purge: %s", line)
    return done


def whitelist_models(client: MlflowClient, name: str) -> list[str]:
    """``[name]`` when a model is registered under it, else the per-pair models of a
    whitelist spec called ``name`` (``<name>__<BASE>_<QUOTE>``), else ``[name]`` (which
    :func:`promote` then reports as unknown)."""
    try:
        client.get_registered_model(name)
        return [name]
    except MlflowException:
        pass
    prefix = f"{name}__"
    found = sorted(m.name for m in client.search_registered_models() if m.name.startswith(prefix))
    return found or [name]


def promote(
    client: MlflowClient,
    name: str,
    version: int | None,
    reason: str,
    user: str | None = None,
    force: bool = False,
) -> dict[str, str]:
    """Move alias ``champion`` to ``version`` (None: the version alias ``challenger`` is
    on) and record who, when, why and key metrics.

    The promotion gate (:func:`ml.evaluation.promotion_gate`) refuses a version whose
    evaluation does worse than buy and hold (a risk forecast: HAR-RV) on the same
    candles; ``force`` promotes it anyway, and the decision records that it was forced."""
    if not reason.strip():
        raise RegistryError("a promotion needs a reason (--reason TEXT)")
    model_version, gate = check_promotion(client, name, version, force)
    version = int(model_version.version)
    run_metrics = client.get_run(model_version.run_id).data.metrics if model_version.run_id else {}
    previous = None
    with contextlib.suppress(MlflowException):  # no champion yet
        previous = client.get_model_version_by_alias(name, CHAMPION).version
    decision = {
        "version": str(version),
        "promoted_by": user or getpass.getuser(),
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "promotion_reason": reason,
        "previous_champion": str(previous) if previous is not None else "none",
        GATE_TAG: gate.verdict if gate.passed else f"forced past: {gate.reason}",
    }
    try:  # a champion that cannot be served would leave a restarted bot with nothing
        load_bundle(f"models:/{name}/{version}")
    except (RegistryError, BundleError) as exc:
        raise RegistryError(
            f"{name} version {version} is not promoted: its model does not load ({exc.message})",
            hint="restore its artefacts (tradingbot restore), or train again",
        ) from exc
    for key in (
        "overall.calmar",
        "overall.sharpe",
        "overall.accuracy",
        "overall.max_drawdown",
        "overall.log_loss",
    ):
        if key in run_metrics:
            decision[f"metric.{key}"] = f"{run_metrics[key]:.6g}"
    client.set_registered_model_alias(name, CHAMPION, str(version))
    _record_promotion(client, model_version, decision, reason)
    return decision


def check_promotion(
    client: MlflowClient, name: str, version: int | None, force: bool = False
) -> tuple[ModelVersion, Gate]:
    """The version :func:`promote` would promote and the gate's verdict on it; raises
    what promote would refuse for the gate (checked for every model of a whitelist
    before any is promoted)."""
    model_version = _version_to_promote(client, name, version)
    if not is_complete(client, model_version):
        raise RegistryError(
            f"{name} version {model_version.version} was never completely registered: "
            "its run did not finish",
            hint="its training was interrupted or failed: train again, or promote another version",
        )
    run_metrics = client.get_run(model_version.run_id).data.metrics if model_version.run_id else {}
    gate = promotion_gate(run_metrics)
    if not gate.passed and not force:
        raise RegistryError(
            f"{name} version {model_version.version} is not promoted: {gate.reason}",
            hint="a model that does worse than its baseline is promoted only on purpose: "
            "--force (with --reason saying why)",
        )
    return model_version, gate


def _version_to_promote(client: MlflowClient, name: str, version: int | None) -> ModelVersion:
    """The version asked for, or the one @challenger is on; each missing one named."""
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        known = sorted(m.name for m in client.search_registered_models())
        raise RegistryError(
            f"no model named {name!r} in the registry",
            hint=f"registered: {', '.join(known) if known else 'none yet (tradingbot train SPEC)'}",
        ) from exc
    if version is None:
        try:
            version = int(client.get_model_version_by_alias(name, CHALLENGER).version)
        except MlflowException as exc:
            raise RegistryError(
                f"model {name!r} has no @{CHALLENGER}", hint="give --version N"
            ) from exc
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise RegistryError(
            f"model {name!r} has no version {version}",
            hint="list versions in the MLflow UI (tradingbot ui) or train one with tradingbot train",
        ) from exc


def _record_promotion(
    client: MlflowClient, model_version: ModelVersion, decision: dict[str, str], reason: str
) -> None:
    """The decision on the version (its description headed by it, its tags) and its run."""
    name, version = model_version.name, str(model_version.version)
    headline = (
        f"Promoted to {CHAMPION} on {decision['promoted_at']} by {decision['promoted_by']}: "
        f"{reason}"
    )
    description = model_version.description or ""
    client.update_model_version(name, version, description=f"{headline}\n\n{description}".strip())
    for key, value in decision.items():
        if key != "version":
            client.set_model_version_tag(name, version, key, value)
    if model_version.run_id:
        client.set_tag(
            model_version.run_id, "tradingbot.decision", f"promoted to {CHAMPION}: {reason}"
        )
        client.set_tag(model_version.run_id, "tradingbot.promoted_by", decision["promoted_by"])
