"""``[trust] expiration_hours`` (issue 28, FreqAI's model lifetime): a model serves no
candle more than that many hours after the end of its training window."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from common.layout import UserDir
from tests.conftest import import_synthetic, local_context


def test_a_model_older_than_its_expiry_predicts_nothing_and_says_so(tmp_path: Path) -> None:
    from experiments.spec import parse_experiment
    from experiments.training import train
    from ml.registry import promote
    from ml.serving import ModelAdapter
    from ml.tracking import configure, default_tracking_uri

    userdir = tmp_path / "ud"
    candles = import_synthetic(userdir, "BTC/USDT", candles=2400, seed=22)
    spec = {
        "name": "exp_m",
        "data": {"timerange": "-20210315"},
        "regime": {"n_restarts": 1, "n_iter": 20},
        "model": {"kind": "lightgbm", "params": {"n_estimators": 15, "num_leaves": 5}},
        "walk_forward": {"folds": 1, "test_size": 300},
        "trust": {"expiration_hours": 48},
    }
    uri = default_tracking_uri(userdir)
    result = train(parse_experiment(spec, source="t"), context=local_context(userdir, uri))
    promote(
        configure(uri, UserDir(userdir)), "exp_m", result.version, "t", user="pytest", force=True
    )
    adapter = ModelAdapter("models:/exp_m@champion", tracking_uri=uri)
    served = adapter.populate(candles, "BTC/USDT")
    end = pd.Timestamp(adapter.bundle.metadata.train_window.last)  # type: ignore[union-attr]
    fresh = (served["date"] > end) & (served["date"] <= end + pd.Timedelta(hours=48))
    stale = served["date"] > end + pd.Timedelta(hours=48)
    assert fresh.sum() == 48 and stale.sum() > 100
    assert (served.loc[fresh, "do_predict"] == 1).all()  # the 48 hours after training
    assert (served.loc[stale, "do_predict"] == 0).all() and served.loc[
        stale, "&-prediction"
    ].notna().all()
    assert adapter.guard.expired["BTC/USDT"] == int(stale.sum())
    assert adapter.guard.trusted["BTC/USDT"] == 48

    # specs without it keep their hash, with a dissimilarity threshold too
    with_di = {**spec, "trust": {"dissimilarity_threshold": 1.5}}
    assert parse_experiment(with_di, source="t").hash == "8b6c9955fd7bac3d"  # before expiry
    plain = parse_experiment({"name": "p", "model": {"kind": "lightgbm"}}, source="t")
    assert plain.hash == "dee8dd82e85abc08"  # computed by the code before [trust] existed
