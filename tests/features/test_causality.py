"""Causality, the contract of this project: a value at candle t uses candles <= t only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.causality import CausalityViolation, assert_prefix_invariant
from features.feature_spec import (
    FeatureSpec,
    default_spec,
    slow_clock_spec,
    spec_with_higher_timeframe,
)
from features.pipeline import build, resample

HTF_SPEC = spec_with_higher_timeframe(spec_with_higher_timeframe(default_spec(), "4h"), "1d")
# slow-clock features on the hourly candles themselves and on causally resampled daily closes
SLOW_SPEC = FeatureSpec.model_validate(
    {
        **slow_clock_spec((2, 5)).model_dump(mode="json"),
        "features": [
            {"kind": kind, "halflives_days": [1, 2.5]}
            for kind in (
                "ewm_return",
                "ewm_log_downside_deviation",
                "ewm_sortino",
                "trend_distance",
            )
        ],
    }
)


def test_default_spec_is_causal_on_synthetic(synthetic_candles: pd.DataFrame) -> None:
    tested = assert_prefix_invariant(
        lambda c: build(c, default_spec()), synthetic_candles, prefixes=8
    )
    assert len(tested) == 8


def test_higher_timeframe_features_are_causal_on_synthetic(synthetic_candles: pd.DataFrame) -> None:
    # Prefixes ending at every hour of the 4h and 1d cycles: mid-candle ends are where leaks live.
    ends = [1500 + k for k in range(24)] + [2999]
    assert_prefix_invariant(lambda c: build(c, HTF_SPEC, "1h"), synthetic_candles, prefixes=ends)


def test_slow_clock_features_are_causal_on_synthetic(synthetic_candles: pd.DataFrame) -> None:
    # prefixes ending at every hour of two days: daily closes are where a leak would live
    ends = [1500 + k for k in range(48)] + [2999]
    tested = assert_prefix_invariant(
        lambda c: build(c, SLOW_SPEC, "1h"), synthetic_candles, prefixes=ends
    )
    assert len(tested) == 49
    frame = build(synthetic_candles, SLOW_SPEC, "1h")
    assert frame.iloc[-1].notna().all()  # three weeks of candles fill every warm-up


@pytest.mark.shared_data
def test_default_and_higher_timeframe_specs_are_causal_on_real_btc(
    btc_candles: pd.DataFrame,
) -> None:
    assert_prefix_invariant(lambda c: build(c, default_spec()), btc_candles, prefixes=6, seed=1)
    assert_prefix_invariant(
        lambda c: build(c, HTF_SPEC, "1h"), btc_candles, prefixes=6, seed=2, minimum=24
    )
    assert_prefix_invariant(
        lambda c: build(c, slow_clock_spec(), "1h"), btc_candles, prefixes=6, seed=3, minimum=24
    )


def test_the_check_catches_a_planted_leak(synthetic_candles: pd.DataFrame) -> None:
    def leaky(candles: pd.DataFrame) -> pd.DataFrame:
        frame = build(candles, default_spec())
        # A centred window: the classic leak (uses 2 candles after t).
        frame["%-leak"] = candles["close"].rolling(5, center=True).mean() / candles["close"]
        return frame

    with pytest.raises(CausalityViolation, match=r"column '%-leak' at row \d+"):
        assert_prefix_invariant(leaky, synthetic_candles, prefixes=4)


def test_the_check_catches_a_higher_timeframe_merged_by_open_time(
    synthetic_candles: pd.DataFrame,
) -> None:
    """Joining a 4h candle at its open time uses its close 3 hours early: must be caught."""

    def merged_at_open(candles: pd.DataFrame) -> pd.DataFrame:
        frame = build(candles, default_spec())
        coarse = resample(candles, "1h", "4h")
        coarse["%-ret_4h"] = np.log(coarse["close"]).diff()
        joined = pd.merge_asof(candles[["date"]], coarse[["date", "%-ret_4h"]], on="date")
        frame["%-ret_4h"] = joined["%-ret_4h"].to_numpy()
        return frame

    with pytest.raises(CausalityViolation, match="%-ret_4h"):
        assert_prefix_invariant(merged_at_open, synthetic_candles, prefixes=range(1001, 1005))


def test_higher_timeframe_value_appears_when_its_candle_has_closed(
    synthetic_candles: pd.DataFrame,
) -> None:
    spec = FeatureSpec.model_validate(
        {
            "features": [{"kind": "log_return", "windows": [1]}],
            "higher_timeframes": [
                {"timeframe": "4h", "features": [{"kind": "log_return", "windows": [1]}]}
            ],
        }
    )
    frame = build(synthetic_candles, spec, "1h")
    close = synthetic_candles["close"].to_numpy()
    hours = synthetic_candles["date"].dt.hour.to_numpy()
    # At 03:00 (the last hour of the 00:00 4h candle) the 4h return is close[03:00] / close[23:00 - 1 day].
    rows = np.flatnonzero((hours % 4 == 3) & (np.arange(len(close)) >= 8))
    for t in rows[:20]:
        assert frame["%-log_return_1_4h"].iloc[t] == pytest.approx(
            np.log(close[t] / close[t - 4]), abs=1e-12
        )
        # ...and the following three hours still see that same, completed value.
        assert (
            frame["%-log_return_1_4h"].iloc[t : t + 4] == frame["%-log_return_1_4h"].iloc[t]
        ).all()


def _random_candles(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=40, max_value=300))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    zero_volume_share = draw(st.sampled_from([0.0, 0.0, 0.2]))
    rng = np.random.default_rng(seed)
    returns = rng.normal(0, draw(st.sampled_from([0.001, 0.01, 0.05])), n)
    close = 100 * np.exp(np.cumsum(returns))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.005, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.005, n)))
    volume = rng.lognormal(3, 1, n) * (rng.random(n) >= zero_volume_share)
    dates = pd.date_range("2022-03-01", periods=n, freq="1h", tz="UTC").astype(
        "datetime64[ns, UTC]"
    )
    return pd.DataFrame(
        {"date": dates, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    )


random_candles = st.composite(_random_candles)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candles=random_candles(), seed=st.integers(0, 1000))
def test_property_prefix_invariance_on_random_ohlcv(candles: pd.DataFrame, seed: int) -> None:
    small = FeatureSpec.model_validate(
        {
            "features": [
                f.model_dump()
                for f in default_spec().features
                if getattr(f, "windows", (0,))[0] < 40
            ]
            + [{"kind": "macd", "fast": 3, "slow": 8, "signal": 4}],
            "higher_timeframes": [
                {"timeframe": "4h", "features": [{"kind": "rsi", "windows": [3]}]}
            ],
        }
    )
    assert_prefix_invariant(lambda c: build(c, small, "1h"), candles, prefixes=3, seed=seed)


@settings(max_examples=25, deadline=None)
@given(candles=random_candles())
def test_property_no_infinities_and_warmup_is_nan_not_backfilled(candles: pd.DataFrame) -> None:
    frame = build(candles, default_spec())
    values = frame.drop(columns="date").to_numpy()
    assert not np.isinf(values).any()
    # Warm-up is NaN, never filled: a 24-candle log return is NaN on the first 24 rows exactly.
    assert frame["%-log_return_24"].iloc[:24].isna().all()
    assert frame["%-log_return_24"].iloc[24:].notna().all()
    assert len(frame) == len(candles)
    assert (frame["date"].to_numpy() == candles["date"].to_numpy()).all()


def test_reference_pair_features_are_causal_and_joined_by_candle_time(
    synthetic_candles: pd.DataFrame,
) -> None:
    """A reference pair's features at candle t are its own features at the same candle
    time, computed from its candles up to t: on any prefix (of both markets, as they were
    when that candle closed) the rows do not change; a candle it lacks gives NaN."""
    from features.data.synthetic import generate
    from features.feature_spec import FeatureSpec, default_spec, reference_suffix
    from features.pipeline import build

    ours = synthetic_candles.iloc[:1200].reset_index(drop=True)
    reference, _ = generate(1300, seed=77)
    reference["date"] = pd.date_range(
        ours["date"].iloc[0] - pd.Timedelta(hours=50), periods=1300, freq="1h", tz="UTC"
    ).astype("datetime64[ns, UTC]")
    reference = reference.drop(index=[700]).reset_index(drop=True)  # one candle missing
    spec = FeatureSpec(features=default_spec().features, reference_pairs=("BTC/USDT",))

    def as_of(candles: pd.DataFrame) -> pd.DataFrame:
        last = candles["date"].iloc[-1]
        return build(candles, spec, "1h", {"BTC/USDT": reference[reference["date"] <= last]})

    assert_prefix_invariant(as_of, ours, prefixes=5, minimum=300)
    full = as_of(ours)
    suffix = reference_suffix("BTC/USDT")
    own = build(reference, FeatureSpec(features=default_spec().features), "1h")
    at = int(np.flatnonzero(ours["date"] == reference["date"].iloc[900])[0])
    assert full[f"%-rsi_14{suffix}"].iloc[at] == own["%-rsi_14"].iloc[900]
    missing = int(np.flatnonzero(ours["date"] == ours["date"].iloc[0] + pd.Timedelta(hours=650))[0])
    assert np.isnan(full[f"%-log_return_1{suffix}"].iloc[missing])


def test_shifted_candles_are_causal_and_are_the_features_candles_before(
    synthetic_candles: pd.DataFrame,
) -> None:
    """FreqAI's include_shifted_candles: each feature as it was 1..n candles before."""
    spec = HTF_SPEC.model_copy(update={"include_shifted_candles": 2})
    ends = [1500 + k for k in range(8)] + [2999]
    assert_prefix_invariant(lambda c: build(c, spec, "1h"), synthetic_candles, prefixes=ends)
    frame = build(synthetic_candles, spec, "1h")
    plain = build(synthetic_candles, HTF_SPEC, "1h")
    names = [c for c in plain.columns if c.startswith("%-")]
    assert list(frame.columns) == [
        *plain.columns,
        *(f"{c}_shift-1" for c in names),
        *(f"{c}_shift-2" for c in names),
    ]
    for name in names:
        np.testing.assert_array_equal(frame[f"{name}_shift-2"].iloc[2:], plain[name].iloc[:-2])
    assert frame[f"{names[0]}_shift-2"].iloc[:2].isna().all()
    assert spec.hash != HTF_SPEC.hash
    assert HTF_SPEC.model_copy(update={"include_shifted_candles": 0}).hash == HTF_SPEC.hash
