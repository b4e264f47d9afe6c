"""[lifetime] continual_learning (FreqAI's): a fit starts from the model before it. Each
model that can continues from the previous one's state; walk-forward folds chain; the
final model continues the last fold, and a retrain's the champion."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common.errors import SpecError
from common.layout import UserDir
from experiments.spec import parse_experiment
from ml.models import FORECASTERS, forecaster_class
from tests.conftest import CliResult, import_synthetic, local_context

HAS_CATBOOST = importlib.util.find_spec("catboost") is not None
# nearly no learning in the continued fit: it must keep the model it started from
STILL = {
    "lightgbm": {"n_estimators": 1, "learning_rate": 1e-9},
    "xgboost": {"n_estimators": 1, "learning_rate": 1e-9},
    "catboost": {"iterations": 1, "learning_rate": 1e-5},
    "mlp": {"max_epochs": 1, "learning_rate": 1e-12},
}
FIRST = {
    "lightgbm": {"n_estimators": 40},
    "xgboost": {"n_estimators": 40},
    "catboost": {"iterations": 40},
    "mlp": {"hidden_size": 16, "max_epochs": 10},
}
KINDS = [
    "lightgbm",
    "xgboost",
    pytest.param(
        "catboost",
        marks=pytest.mark.skipif(not HAS_CATBOOST, reason="CatBoost is an optional extra"),
    ),
    "mlp",
]


def _rows(n: int, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return frame, (frame["a"] + 0.3 * rng.normal(size=n) > 0).astype("float64").to_numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_a_fit_starts_from_the_model_it_continues(kind: str) -> None:
    cls = forecaster_class(kind)
    frame, up = _rows(3000)
    settings: dict[str, Any] = {"validation_fraction": 0.0, "random_state": 1}
    first = cls(**FIRST[kind], **settings).fit(frame[:1500], up[:1500])
    later = frame[1500:]
    # with (almost) nothing new learned, the continued model is the one it started from
    still = cls(**{**FIRST[kind], **STILL[kind]}, **settings).fit(
        later, 1.0 - up[1500:], init_model=first
    )
    np.testing.assert_allclose(still.predict_proba(later), first.predict_proba(later), atol=1e-4)
    fresh = cls(**{**FIRST[kind], **STILL[kind]}, **settings).fit(later, 1.0 - up[1500:])
    assert np.abs(fresh.predict_proba(later) - first.predict_proba(later)).max() > 0.05
    other = later.rename(columns={"b": "c"})
    with pytest.raises(ValueError, match="columns"):
        cls(**FIRST[kind], **settings).fit(other, up[1500:], init_model=first)


def test_every_kind_that_continues_says_so_and_the_others_are_refused() -> None:
    able = {k for k in FORECASTERS if forecaster_class(k).continues_training}
    assert able == {"lightgbm", "xgboost", "catboost", "lstm", "hmm_lstm", "mlp", "transformer"}
    base = {"name": "c", "lifetime": {"continual_learning": True}}
    with pytest.raises(SpecError, match="'random_forest' cannot continue"):
        parse_experiment({**base, "model": {"kind": "random_forest"}}, source="t")
    with pytest.raises(SpecError, match="principal_component_analysis"):
        parse_experiment(
            {
                **base,
                "model": {"kind": "lightgbm"},
                "pipeline": {"principal_component_analysis": True},
            },
            source="t",
        )
    spec = parse_experiment({**base, "model": {"kind": "lightgbm"}}, source="t")
    assert spec.training.chains_folds
    plain = parse_experiment({"name": "c", "model": {"kind": "lightgbm"}}, source="t")
    assert plain.hash != spec.hash
    assert (
        plain.hash
        == parse_experiment(
            {**{"name": "c"}, "lifetime": {}, "model": {"kind": "lightgbm"}}, source="t"
        ).hash
    )


SPEC = """
name = "cl_m"
seed = 4

[data]
pair = "BTC/USDT"
timerange = "20210101-20210301"

[regime]
n_restarts = 1
n_iter = 20
warm_start = false

[model]
kind = "lightgbm"
params = { n_estimators = 15, num_leaves = 5, early_stopping_rounds = 1000 }

[walk_forward]
folds = 3
test_size = 200

[lifetime]
continual_learning = true
"""


def test_folds_chain_the_final_model_continues_and_a_retrain_continues_the_champion(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    from common.executors import InProcess
    from experiments.spec import load_experiment
    from experiments.training import train
    from ml.model_source import load_bundle
    from ml.serving.served import logged_folds
    from ml.tracking import configure, default_tracking_uri

    userdir = tmp_path / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=1900, seed=8)
    spec_path = tmp_path / "cl.toml"
    spec_path.write_text(SPEC)

    class Unused(InProcess):
        def run_all(self, jobs, *, on_done=None):  # type: ignore[no-untyped-def]
            raise AssertionError("chained folds must run in order, not as executor jobs")

    result = train(
        load_experiment(spec_path),
        context=local_context(userdir),
        executor=Unused(),
        keep_folds=True,
    )
    client = configure(default_tracking_uri(userdir), UserDir(userdir))
    final = load_bundle(f"models:/cl_m/{result.version}")
    folds = logged_folds(client, result.run_id, tmp_path / "folds")
    chain = [fold["continued_from"] for fold in folds]
    assert len(chain) == 3
    assert chain[0] == "scratch"
    assert set(chain[1:]) <= {"the fold before", "scratch"}  # scratch: regimes named otherwise
    # the final model continued the last fold, which continued those before it when it could
    assert client.get_run(result.run_id).data.tags["continued_from"] == "the fold before"
    trees = final.forecaster.model_.booster_.num_trees()
    assert trees > 15  # its own (at most 15) and those of the fold it continued

    first = cli(
        "promote",
        "cl_m",
        "--version",
        str(result.version),
        "--reason",
        "t",
        "--force",
        "--userdir",
        userdir,
    )
    assert first.code == 0, first.err
    import_synthetic(userdir, "BTC/USDT", candles=2300, seed=8)  # later candles arrive
    again = cli("retrain", spec_path, "--userdir", userdir)
    assert again.code == 0, again.err
    newest = client.get_model_version_by_alias("cl_m", "challenger")
    tags = client.get_run(newest.run_id).data.tags
    assert tags["continued_from"] == "cl_m trained to 2021-02-28 22:00"  # the champion
    retrained = load_bundle(f"models:/cl_m/{newest.version}")
    grown = retrained.forecaster.model_.booster_.dump_model()["tree_info"]
    kept = final.forecaster.model_.booster_.dump_model()["tree_info"]
    assert len(grown) > len(kept) and grown[: len(kept)] == kept  # the champion's trees, then more
