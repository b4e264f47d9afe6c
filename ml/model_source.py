"""Where a served model comes from and how it is read: the registry of a trusted store,
the bundle's digest checked before it is unpickled.

A model is code: its bundle is a pickle. So a strategy config, a composition or an
environment variable may name a model only as a registry URI,
``models:/NAME@alias`` or ``models:/NAME/N`` (``NAME`` may hold ``{pair}``), and
only in a trusted store: the user dir's own (``<userdir>/mlflow.db``), or the one
the bot's environment names in ``MLFLOW_TRACKING_URI``, which is the documented
opt-in for a shared server (docs/RISK.md). A file path, a run, a URL or another
store named only in a config file is refused before anything is read.
:func:`load_bundle` then reads the version's bundle file once and checks it against
the digest its training run recorded before anything in it runs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
from mlflow.tracking import MlflowClient

from common.atomic import scratch_dir
from common.errors import SpecError, TradingbotError
from common.layout import UserDir
from ml.bundle import ModelBundle

_NAME = r"[A-Za-z0-9_.\-]*(?:\{pair\})?[A-Za-z0-9_.\-]*"
MODEL_URI = re.compile(
    rf"^models:/(?P<name>{_NAME})(?:@(?P<alias>[A-Za-z0-9_\-]+)|/(?P<version>[0-9]+))$"
)
ENVIRONMENT_STORE = "MLFLOW_TRACKING_URI"


class UntrustedModelError(SpecError):
    """A model or a store outside what the operator trusts."""


class RegistryError(TradingbotError):
    """A model, version or alias that the registry does not have."""


def check_model_uri(uri: str, *, where: str = "model_uri") -> str:
    """``uri`` when it names a registered model version or alias; raises saying how to
    name one otherwise."""
    match = MODEL_URI.match(uri)
    if match is None or not match["name"].strip("{}"):
        raise UntrustedModelError(
            f"{where} {uri!r} is not a registry URI: models load only from the registry",
            hint="give models:/NAME@champion or models:/NAME/3 (register a model with "
            "tradingbot train, move aliases with tradingbot promote)",
        )
    return uri


def sqlite_uri_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, resolved; None for other URIs."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]).resolve() if uri.startswith(prefix) else None


def trusted_tracking_uri(
    configured: str | None, userdir: Path, environment: Mapping[str, str]
) -> str:
    """The store a strategy may load models from: ``configured`` (a config's
    ``tradingbot.tracking_uri``) when it is the user dir's store or the environment's
    ``MLFLOW_TRACKING_URI``; else the environment's; else the user dir's."""
    own = f"sqlite:///{UserDir(userdir).mlflow_db.resolve()}"
    from_environment = environment.get(ENVIRONMENT_STORE) or None
    if not configured:
        return from_environment or own
    if configured == from_environment:
        return configured
    path = sqlite_uri_path(configured)
    if path is not None and path == sqlite_uri_path(own):
        return own
    raise UntrustedModelError(
        f"tracking_uri {configured!r} in the config is neither this user dir's store "
        f"({own}) nor {ENVIRONMENT_STORE}: models load only from a store the operator trusts",
        hint=f"to trust it, start the bot with {ENVIRONMENT_STORE}={configured} "
        "in its environment (docs/RISK.md)",
    )


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
