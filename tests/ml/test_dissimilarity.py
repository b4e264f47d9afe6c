"""FreqAI's dissimilarity index: rows unlike the training data are not trusted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.layout import UserDir
from ml.dissimilarity import DissimilarityIndex
from tests.conftest import import_synthetic, local_context


def test_training_rows_score_low_and_a_distant_row_high() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(500, 4)), columns=list("abcd"))
    index = DissimilarityIndex(max_reference_rows=200).fit(train)
    assert index.reference_.shape == (200, 4)
    seen = index.score(train.iloc[:50])
    assert np.nanmax(seen) < 0.6
    far = index.score(pd.DataFrame([[8.0, -8.0, 8.0, -8.0]], columns=list("abcd")))
    assert far[0] > 2.0
    assert np.isnan(index.score(pd.DataFrame([[np.nan, 0, 0, 0]], columns=list("abcd")))[0])


def test_the_adapter_withholds_dissimilar_rows_and_counts_them(tmp_path: Path) -> None:
    from experiments.spec import parse_experiment
    from experiments.training import train
    from ml.model_source import load_bundle
    from ml.registry import promote
    from ml.serving import ModelAdapter
    from ml.tracking import configure, default_tracking_uri

    def wild(frame: pd.DataFrame) -> None:
        """After the training window the market turns wild: every move ten times larger."""
        later = frame.index >= 2000
        base = float(frame.loc[later, "open"].iloc[0])
        for column in ("open", "high", "low", "close"):
            moved = np.log(frame.loc[later, column].to_numpy() / base)
            frame.loc[later, column] = base * np.exp(10.0 * moved)
        frame.loc[later, "volume"] *= 10.0

    userdir = tmp_path / "ud"
    candles = import_synthetic(userdir, "BTC/USDT", candles=2400, seed=21, change=wild)
    spec = parse_experiment(
        {
            "name": "di_m",
            "data": {"timerange": "-20210315"},
            "regime": {"n_restarts": 1, "n_iter": 20},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 15, "num_leaves": 5}},
            "walk_forward": {"folds": 1, "test_size": 300},
            "trust": {"dissimilarity_threshold": 1.5},
        },
        source="t",
    )
    uri = default_tracking_uri(userdir)
    result = train(spec, context=local_context(userdir, uri))
    promote(
        configure(uri, UserDir(userdir)), "di_m", result.version, "t", user="pytest", force=True
    )
    adapter = ModelAdapter("models:/di_m@champion", tracking_uri=uri)
    served = adapter.populate(candles, "BTC/USDT")
    calm = served.iloc[1700:2000]  # after training, before the change
    changed = served.iloc[2100:]
    assert (calm["DI_values"] > 1.5).mean() < 0.2
    assert (changed["DI_values"] > 1.5).mean() > 0.5
    assert (changed.loc[changed["DI_values"] > 1.5, "do_predict"] == 0).all()
    after_training = served["date"] > pd.Timestamp(
        load_bundle("models:/di_m@champion").metadata.train_window.last
    )
    withheld = (served["DI_values"] > 1.5) & served["&-prediction"].notna() & after_training
    assert adapter.guard.dissimilar["BTC/USDT"] == int(withheld.sum()) > 0
    # causal: the DI of a row is the same on a prefix of the candles
    bundle = load_bundle("models:/di_m@champion")
    full = bundle.predict(candles)["di"]
    prefix = bundle.predict(candles.iloc[:2150])["di"]
    np.testing.assert_allclose(prefix.to_numpy(), full.iloc[:2150].to_numpy(), equal_nan=True)
    # a spec without [trust] keeps its hash and computes no DI
    plain = parse_experiment({"name": "p", "model": {"kind": "lightgbm"}}, source="t")
    assert plain.trust.dissimilarity_threshold is None
    assert plain.hash == "dee8dd82e85abc08"  # computed by the code before [trust] existed


@pytest.mark.parametrize("threshold", [0.0, -1.0])
def test_a_threshold_must_be_positive(threshold: float) -> None:
    from common.errors import SpecError
    from experiments.spec import parse_experiment

    with pytest.raises(SpecError, match="dissimilarity_threshold"):
        parse_experiment(
            {
                "name": "p",
                "model": {"kind": "lightgbm"},
                "trust": {"dissimilarity_threshold": threshold},
            },
            source="t",
        )
