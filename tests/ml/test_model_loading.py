"""Models load only from a trusted registry, and nothing of an artefact runs before its
digest is checked (ml/model_uris.py, ml/registry.load_bundle)."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest
from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

from common.layout import UserDir
from experiments.spec import parse_experiment
from experiments.training import train
from ml.model_source import BUNDLE_ARTIFACT, RegistryError, load_bundle
from ml.model_uris import UntrustedModelError, check_model_uri, trusted_tracking_uri
from ml.registry import promote
from ml.tracking import configure, default_tracking_uri
from tests.conftest import import_synthetic, local_context


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    userdir = tmp_path_factory.mktemp("loading") / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=1900, seed=5)
    uri = default_tracking_uri(userdir)
    spec = parse_experiment(
        {
            "name": "load_m",
            "data": {"pair": "BTC/USDT", "timerange": "-20210301"},
            "regime": {"n_restarts": 1, "n_iter": 20},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 15, "num_leaves": 5}},
            "walk_forward": {"folds": 1, "test_size": 300},
        },
        source="t",
    )
    for _ in range(2):  # versions 1 and 2
        train(spec, context=local_context(userdir, uri))
    return userdir, uri


@pytest.mark.parametrize(
    "uri",
    [
        "/tmp/model.pkl",
        "file:///tmp/model",
        "runs:/abc/model",
        "models:/",
        "models:/x/latest",
        "models:/../../etc@champion",
        "https://evil.example/model",
    ],
)
def test_only_registry_uris_name_a_model(uri: str) -> None:
    with pytest.raises(UntrustedModelError, match="not a registry URI"):
        check_model_uri(uri)
    with pytest.raises(UntrustedModelError):
        load_bundle(uri)


def test_registry_uris_and_pair_placeholders_are_accepted() -> None:
    for uri in ("models:/btc_1h@champion", "models:/m__BTC_USDT/3", "models:/wl__{pair}@champion"):
        assert check_model_uri(uri) == uri


def test_a_store_named_only_in_a_config_is_not_trusted(tmp_path: Path) -> None:
    own = default_tracking_uri(tmp_path / "ud")
    other = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    assert trusted_tracking_uri(None, UserDir(tmp_path / "ud"), {}) == own
    assert trusted_tracking_uri(own, UserDir(tmp_path / "ud"), {}) == own
    with pytest.raises(UntrustedModelError, match="MLFLOW_TRACKING_URI"):
        trusted_tracking_uri(other, UserDir(tmp_path / "ud"), {})
    with pytest.raises(UntrustedModelError):
        trusted_tracking_uri("http://attacker:5000", UserDir(tmp_path / "ud"), {})
    # the documented opt-in: the bot's environment names the store
    assert (
        trusted_tracking_uri(other, UserDir(tmp_path / "ud"), {"MLFLOW_TRACKING_URI": other})
        == other
    )
    assert (
        trusted_tracking_uri(None, UserDir(tmp_path / "ud"), {"MLFLOW_TRACKING_URI": other})
        == other
    )


def _bundle_file(uri: str) -> Path:
    return Path(ModelsArtifactRepository(uri).download_artifacts(BUNDLE_ARTIFACT))


class _Tripwire:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {os.environ['TRIPWIRE']}",))


def test_a_changed_artefact_is_refused_before_it_is_unpickled(
    store: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    userdir, uri = store
    configure(uri, UserDir(userdir))
    path_before = list(sys.path)
    bundle = load_bundle("models:/load_m/1")  # intact: loads, and touches no sys.path
    assert bundle.metadata.pair == "BTC/USDT"
    assert sys.path == path_before
    tripwire = tmp_path / "unpickled"
    monkeypatch.setenv("TRIPWIRE", str(tripwire))
    target = _bundle_file("models:/load_m/1")
    original = target.read_bytes()
    try:
        target.write_bytes(pickle.dumps(_Tripwire()))
        with pytest.raises(RegistryError, match="sha256"):
            load_bundle("models:/load_m/1")
        assert not tripwire.exists()
    finally:
        target.write_bytes(original)
    assert load_bundle("models:/load_m/1").metadata.pair == "BTC/USDT"


def test_promote_refuses_a_version_whose_artefact_is_truncated_or_gone(
    store: tuple[Path, str],
) -> None:
    userdir, uri = store
    client = configure(uri, UserDir(userdir))
    target = _bundle_file("models:/load_m/2")
    original = target.read_bytes()
    try:
        target.write_bytes(original[: len(original) // 2])
        with pytest.raises(RegistryError, match="does not load"):
            promote(client, "load_m", 2, "truncated", user="pytest", force=True)
        target.unlink()
        with pytest.raises(RegistryError, match="does not load"):
            promote(client, "load_m", 2, "deleted", user="pytest", force=True)
        with pytest.raises(Exception, match="champion"):
            client.get_model_version_by_alias("load_m", "champion")  # nothing moved
    finally:
        target.write_bytes(original)
    promote(client, "load_m", 2, "intact again", user="pytest", force=True)
    assert str(client.get_model_version_by_alias("load_m", "champion").version) == "2"
