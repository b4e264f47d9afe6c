"""How a served model is read: resolved in the registry (:mod:`ml.model_uris` says which
URIs and stores are allowed), its bundle's digest checked before it is unpickled:
:func:`load_bundle` reads the version's bundle file once and checks it against the
digest its training run recorded before anything in it runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
from mlflow.tracking import MlflowClient

from common.atomic import scratch_dir
from common.errors import TradingbotError
from ml.bundle import ModelBundle
from ml.model_uris import check_model_uri


class RegistryError(TradingbotError):
    """A model, version or alias that the registry does not have."""


def served_version(uri: str, client: MlflowClient | None = None) -> tuple[str, str] | None:
    """``models:/NAME@alias`` -> (NAME, the version the alias is on now); ``models:/NAME/3``
    -> (NAME, "3"); None for other URIs (a run's model, a file)."""
    if not uri.startswith("models:/"):
        return None
    path = uri[len("models:/") :]
    if "@" in path:
        name, alias = path.split("@", 1)
        version = (client or MlflowClient()).get_model_version_by_alias(name, alias).version
        return name, str(version)
    name, _, version = path.rpartition("/")
    return (name, version) if name and version.isdigit() else None


BUNDLE_ARTIFACT = "artifacts/bundle.joblib"  # inside a logged pyfunc model
BUNDLE_DIGEST_TAG = "bundle_sha256"  # on the run that logged it (see log_bundle)


def load_bundle(uri: str) -> ModelBundle:
    """Load the bundle behind a registry URI (``models:/NAME@alias``, ``models:/NAME/3``)
    without running anything of the artefact's own: the bundle file is read once, its
    sha256 checked against the digest its training run recorded, and only then
    unpickled; the pyfunc wrapper and the model's ``code/`` folder are never loaded
    (nothing goes on ``sys.path``)."""
    check_model_uri(uri, where="model")
    client = MlflowClient()
    try:
        resolved = served_version(uri, client)
        if resolved is None:
            raise RegistryError(f"{uri} names no model version")
        name, version = resolved
        model_version = client.get_model_version(name, version)
        expected = _recorded_digest(client, model_version)
        repository = ModelsArtifactRepository(f"models:/{name}/{version}")
        with scratch_dir("model") as tmp:
            local = Path(repository.download_artifacts(BUNDLE_ARTIFACT, dst_path=str(tmp)))  # type: ignore[no-untyped-call]
            payload = local.read_bytes()
    except MlflowException as exc:
        raise RegistryError(f"cannot load {uri}: {exc.message}") from exc
    except OSError as exc:
        raise RegistryError(f"cannot load {uri}: its bundle cannot be read ({exc})") from exc
    digest = hashlib.sha256(payload).hexdigest()
    if digest != expected:
        raise RegistryError(
            f"{uri} ({name} v{version}): the bundle's sha256 {digest[:12]}... is not the "
            f"{expected[:12]}... its run recorded: the artefact was changed or truncated",
            hint="restore the artefacts from a backup (tradingbot restore) or train again",
        )
    return ModelBundle.from_bytes(payload, source=f"{name} v{version}")


def _recorded_digest(client: MlflowClient, model_version: ModelVersion) -> str:
    """The bundle sha256 the version's training run recorded; refused without one."""
    run = client.get_run(model_version.run_id) if model_version.run_id else None
    digest = run.data.tags.get(BUNDLE_DIGEST_TAG) if run is not None else None
    if not digest:
        raise RegistryError(
            f"{model_version.name} v{model_version.version} has no recorded bundle digest: "
            "it was not registered by tradingbot and is not loaded",
            hint="register models with tradingbot train, tune or retrain",
        )
    return str(digest)
