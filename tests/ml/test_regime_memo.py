"""The regime memo: identical inputs give the very same fit and read-out, others do not."""

from __future__ import annotations

import numpy as np
import pytest

from features.data.synthetic import generate
from features.feature_spec import parse_spec
from features.pipeline import build
from ml import regime_memo
from ml.models.regime import RegimeHMM

SPEC = parse_spec(
    {
        "features": [
            {"kind": "log_return", "windows": [1]},
            {"kind": "sqrt_wick", "windows": [1]},
        ]
    }
)
PARAMS = {"n_states": 3, "n_restarts": 1, "n_iter": 30, "random_state": 0}


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    candles, _ = generate(3_000, seed=4)
    return build(candles, SPEC).drop(columns="date").to_numpy()


def test_a_fit_is_reused_only_for_identical_settings_and_rows(x: np.ndarray) -> None:
    model = regime_memo.fit_regime_model(PARAMS, x[:2_000])
    assert regime_memo.fit_regime_model(dict(reversed(PARAMS.items())), x[:2_000]) is model
    direct = RegimeHMM(**PARAMS).fit(x[:2_000])
    for name in ("startprob_", "transmat_", "means_", "covars_", "mean_", "scale_"):
        np.testing.assert_array_equal(getattr(model, name), getattr(direct, name))

    other_seed = regime_memo.fit_regime_model({**PARAMS, "random_state": 1}, x[:2_000])
    changed = x[:2_000].copy()
    changed[1_000, 0] += 1e-12
    other_rows = regime_memo.fit_regime_model(PARAMS, changed)
    assert other_seed is not model and other_rows is not model and other_rows is not other_seed


def test_a_read_out_is_the_filter_of_exactly_that_model_and_those_rows(x: np.ndarray) -> None:
    model = regime_memo.fit_regime_model(PARAMS, x[:2_000])
    probabilities, decisions = regime_memo.filter_regimes(model, x)
    expected = model.filter(x)
    np.testing.assert_array_equal(probabilities, expected[0])
    np.testing.assert_array_equal(decisions, expected[1])
    assert regime_memo.filter_regimes(model, x)[0] is probabilities
    with pytest.raises(ValueError, match="read-only"):
        probabilities[0, 0] = 0.5

    # a model fitted elsewhere (e.g. loaded from the registry): read out, nothing kept
    refit = RegimeHMM(**{**PARAMS, "random_state": 1}).fit(x[:2_000])
    once = regime_memo.filter_regimes(refit, x)[0]
    np.testing.assert_array_equal(once, refit.filter(x)[0])
    assert regime_memo.filter_regimes(refit, x)[0] is not once
    # other rows through the memoised model: computed afresh
    np.testing.assert_array_equal(
        regime_memo.filter_regimes(model, x[:2_500])[0], model.filter(x[:2_500])[0]
    )


def test_read_outs_stay_within_their_byte_budget(
    x: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = regime_memo.fit_regime_model(PARAMS, x[:2_000])
    one = regime_memo.filter_regimes(model, x[:1_000])
    size = one[0].nbytes + one[1].nbytes
    monkeypatch.setattr(regime_memo, "MAX_READOUT_BYTES", 2 * size + size // 2)
    regime_memo.filter_regimes(model, x[1_000:2_000])
    regime_memo.filter_regimes(model, x[2_000:3_000])  # a third entry: the oldest goes
    assert regime_memo.filter_regimes(model, x[:1_000])[0] is not one[0]
