"""The MLP and the transformer (issue 28's model families, FreqAI's PyTorch models) on the
torch base the LSTM uses: they learn, read only rows up to their own (causal), repeat for
a seed, take row weights, and a spec trains them walk-forward like any model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import SpecError
from experiments.spec import parse_experiment
from experiments.training import train
from ml.models import forecaster_class
from tests.conftest import import_synthetic, local_context

KINDS = ["mlp", "transformer"]
SMALL = {
    "mlp": {"hidden_size": 16, "max_epochs": 15, "patience": 15},
    "transformer": {
        "sequence_length": 4,
        "d_model": 8,
        "nhead": 2,
        "max_epochs": 15,
        "patience": 15,
    },
}


def _rows(n: int, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    up = (frame["a"] + 0.3 * rng.normal(size=n) > 0).astype("float64").to_numpy()
    return frame, up


@pytest.mark.parametrize("kind", KINDS)
def test_it_learns_out_of_sample_and_reads_only_rows_up_to_its_own(kind: str) -> None:
    cls = forecaster_class(kind)
    frame, up = _rows(3000)
    model = cls(**SMALL[kind], random_state=1).fit(frame[:2000], up[:2000])
    predicted = model.predict(frame[2000:])
    warm = model.context_rows
    assert model.context_rows == (0 if kind == "mlp" else 3)
    assert np.isnan(predicted[:warm]).all()
    assert (predicted[warm:] == up[2000 + warm :]).mean() > 0.8
    full = model.predict_proba(frame)
    for end in (2001, 2500, 2999):
        # float32 matrix products round by batch size: equal to 1e-6, not in every bit
        np.testing.assert_allclose(model.predict_proba(frame[:end]), full[:end], atol=1e-6)
    again = cls(**SMALL[kind], random_state=1).fit(frame[:2000], up[:2000])
    np.testing.assert_array_equal(again.predict_proba(frame), full)  # a seed repeats
    value = cls(task="regression", **SMALL[kind]).fit(frame, frame["a"].to_numpy() * 2)
    fitted = value.predict(frame)
    ok = np.isfinite(fitted)
    assert np.corrcoef(fitted[ok], frame["a"][ok])[0, 1] > 0.95


@pytest.mark.parametrize("kind", KINDS)
def test_row_weights_decide_what_it_learns(kind: str) -> None:
    cls = forecaster_class(kind)
    frame, up = _rows(2000)
    flipped = up.copy()
    flipped[1000:] = 1.0 - flipped[1000:]  # the relation turns: only recent rows know it
    weights = np.exp(-np.arange(2000)[::-1] / 100.0)
    settings = {**SMALL[kind], "validation_fraction": 0.0, "random_state": 2}
    weighted = cls(**settings).fit(frame, flipped, sample_weight=weights)
    plain = cls(**settings).fit(frame, flipped)
    recent = slice(1600, 2000)
    hit = (weighted.predict(frame[recent]) == flipped[recent]).mean()
    assert hit > 0.75 > (plain.predict(frame[recent]) == flipped[recent]).mean()


def test_a_transformer_whose_heads_do_not_divide_its_width_is_refused_when_read() -> None:
    with pytest.raises(SpecError, match=r"d_model \(30\) must be a multiple of nhead \(4\)"):
        parse_experiment(
            {"name": "t", "model": {"kind": "transformer", "params": {"d_model": 30}}},
            source="t",
        )


@pytest.mark.parametrize("kind", KINDS)
def test_a_spec_trains_it_walk_forward_beside_the_baselines(kind: str, tmp_path: Path) -> None:
    userdir = tmp_path / "ud"
    import_synthetic(userdir, "BTC/USDT", candles=2500, seed=9)
    spec = parse_experiment(
        {
            "name": kind,
            "data": {"pair": "BTC/USDT", "timeframe": "1h"},
            "regime": {"n_restarts": 1, "n_iter": 20},
            "model": {"kind": kind, "params": {**SMALL[kind], "max_epochs": 3}},
            "walk_forward": {"folds": 2, "test_size": 400},
            "pipeline": {"weight_factor": 0.9},
        },
        source="test",
    )
    result = train(spec, context=local_context(userdir))
    assert result.folds == 2 and len(result.out_of_sample) == 800
    assert {"always_long", "sma50_daily"} <= set(result.baselines)
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
