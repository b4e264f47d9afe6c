"""[lifetime] purge_old_models (FreqAI's): after each training only the newest versions and
every aliased one keep their models; the others leave the registry and the disk, their
training runs stay."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow.exceptions import MlflowException

from common.layout import UserDir
from experiments.spec import parse_experiment
from experiments.training import train
from ml.registry import promote, purge_old_versions
from ml.tracking import configure, default_tracking_uri
from tests.conftest import import_synthetic, local_context


def test_old_unaliased_versions_lose_their_models_and_keep_their_runs(tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=1500, seed=4)
    uri = default_tracking_uri(userdir)
    client = configure(uri, UserDir(userdir))

    def trained(seed: int, purge: int | None = None) -> int:
        spec = parse_experiment(
            {
                "name": "pg",
                "seed": seed,
                "regime": {"n_restarts": 1, "n_iter": 10},
                "model": {"kind": "lightgbm", "params": {"n_estimators": 5, "num_leaves": 3}},
                "walk_forward": {"folds": 1, "test_size": 200},
                "lifetime": {"purge_old_models": purge},
            },
            source="t",
        )
        return train(spec, context=local_context(userdir, uri)).version

    first = trained(1)
    promote(client, "pg", first, "the one trading", user="t", force=True)
    second = trained(2)
    doomed = client.get_model_version("pg", str(second))
    model_id = str(doomed.source).removeprefix("models:/")
    files = Path(urlparse(client.get_logged_model(model_id).artifact_location).path)
    assert files.is_dir() and any(files.rglob("bundle.joblib"))
    third = trained(3, purge=1)  # keep the newest, and every aliased version

    kept = {int(v.version) for v in client.search_model_versions("name = 'pg'")}
    assert kept == {first, third}  # v1 is the champion, v3 the newest (and challenger)
    assert not files.exists()  # v2's model left the disk
    assert client.get_run(doomed.run_id).info.status == "FINISHED"  # its record stays
    with pytest.raises(MlflowException):
        client.get_model_version("pg", str(second))
    assert purge_old_versions(client, "pg", 1) == []  # nothing more to do
    with pytest.raises(ValueError, match="at least 1"):
        purge_old_versions(client, "pg", 0)
