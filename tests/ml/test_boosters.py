"""XGBoost and CatBoost as forecasters (issue 28's model families): they learn, read each
row alone (causal), take row weights, give the same digits whatever their threads, and
a spec trains them walk-forward like any model. CatBoost is an optional extra: without
it its tests skip and say so (`make test` installs it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import TradingbotError
from experiments.spec import parse_experiment
from experiments.training import train
from ml.models import forecaster_class
from tests.conftest import import_synthetic, local_context

HAS_CATBOOST = importlib.util.find_spec("catboost") is not None
KINDS = [
    "xgboost",
    pytest.param(
        "catboost",
        marks=pytest.mark.skipif(
            not HAS_CATBOOST, reason="CatBoost is an optional extra: pip install '.[catboost]'"
        ),
    ),
]
SMALL = {"xgboost": {"n_estimators": 60}, "catboost": {"iterations": 60}}


def _rows(n: int, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    up = (frame["a"] + 0.5 * rng.normal(size=n) > 0).astype("float64").to_numpy()
    return frame, up


@pytest.mark.parametrize("kind", KINDS)
def test_it_learns_out_of_sample_and_skips_incomplete_rows(kind: str) -> None:
    cls = forecaster_class(kind)
    frame, up = _rows(4000)
    model = cls(**SMALL[kind], random_state=1).fit(frame[:3000], up[:3000])
    assert (model.predict(frame[3000:]) == up[3000:]).mean() > 0.75
    gap = frame[3000:].copy()
    gap.iloc[3, 1] = np.nan
    p = model.predict_proba(gap)
    assert np.isnan(p[3]).all() and np.isfinite(np.delete(p, 3, axis=0)).all()
    np.testing.assert_allclose(p[~np.isnan(p[:, 0])].sum(axis=1), 1.0)
    value = cls(task="regression", **SMALL[kind]).fit(frame, frame["a"] * 2)
    assert np.corrcoef(value.predict(frame), frame["a"])[0, 1] > 0.95
    assert model.history_ and model.best_iteration_ >= 1  # early stopping watched


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_seed_gives_the_same_model_whatever_its_threads(kind: str) -> None:
    cls = forecaster_class(kind)
    frame, up = _rows(3000)
    one = cls(**SMALL[kind], n_jobs=1, random_state=7).fit(frame, up)
    two = cls(**SMALL[kind], n_jobs=2, random_state=7).fit(frame, up)
    for _ in range(3):
        assert np.array_equal(one.predict_proba(frame), two.predict_proba(frame))


@pytest.mark.parametrize("kind", KINDS)
def test_a_row_is_predicted_from_itself_alone_and_weights_count(kind: str) -> None:
    cls = forecaster_class(kind)
    frame, up = _rows(2000)
    model = cls(**SMALL[kind], random_state=2).fit(frame[:1500], up[:1500])
    full = model.predict_proba(frame)
    for end in (1501, 1800, 1999):
        assert np.array_equal(model.predict_proba(frame[:end]), full[:end])
    flipped = up.copy()
    flipped[1000:] = 1.0 - flipped[1000:]  # the relation turns: only recent rows know it
    weights = np.exp(-np.arange(2000)[::-1] / 100.0)
    weighted = cls(**SMALL[kind], validation_fraction=0, random_state=2).fit(
        frame, flipped, sample_weight=weights
    )
    plain = cls(**SMALL[kind], validation_fraction=0, random_state=2).fit(frame, flipped)
    recent = slice(1600, 2000)
    assert (weighted.predict(frame[recent]) == flipped[recent]).mean() > 0.75
    assert (plain.predict(frame[recent]) == flipped[recent]).mean() < 0.6


@pytest.mark.parametrize("kind", KINDS)
def test_a_spec_trains_it_walk_forward_beside_the_baselines(kind: str, tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=2500, seed=9)
    spec = parse_experiment(
        {
            "name": kind,
            "data": {"pair": "BTC/USDT", "timeframe": "1h"},
            "regime": {"n_restarts": 1, "n_iter": 20},
            "model": {"kind": kind, "params": SMALL[kind]},
            "walk_forward": {"folds": 2, "test_size": 400},
        },
        source="test",
    )
    result = train(spec, context=local_context(userdir))
    assert result.folds == 2 and len(result.out_of_sample) == 800
    assert {"always_long", "sma50_daily"} <= set(result.baselines)
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


def test_without_catboost_the_kind_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "catboost", None)  # as if not installed: import fails
    frame, up = _rows(500)
    with pytest.raises(TradingbotError, match=r"pip install '\.\[catboost\]'"):
        forecaster_class("catboost")().fit(frame, up)
