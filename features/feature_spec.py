"""`FeatureSpec`: which features to build, with which windows; its hash names the set.

A spec is plain data (TOML or JSON on disk)::

    [[features]]
    kind = "log_return"
    windows = [1, 4, 24]

    [[features]]
    kind = "macd"
    fast = 12
    slow = 26
    signal = 9

    [[higher_timeframes]]
    timeframe = "4h"
    features = [{ kind = "rsi", windows = [14] }]

Unknown keys are errors (``extra="forbid"``), so a typo never becomes a silent
default. :data:`PIPELINE_VERSION` is part of the hash: changing how a feature is
computed bumps it, so cached frames of the old code are never reused.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from common.errors import SpecError, validation_message
from features.timeframes import timeframe_to_seconds

PIPELINE_VERSION = 5  # 2-5: slow-clock features over a finite window

Window = Annotated[int, Field(ge=1, le=100_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# windowed kinds that make sense over a single candle; the others need a window of 2 or more
ONE_CANDLE_KINDS = frozenset(
    {"log_return", "log_range", "upper_wick", "lower_wick", "body", "sqrt_wick", "log_volume"}
)


class WindowedFeature(_Strict):
    """A feature family computed once per window (candles)."""

    kind: Literal[
        "log_return",
        "realized_volatility",
        "log_range",
        "upper_wick",
        "lower_wick",
        "body",
        "sqrt_wick",
        "log_volume",
        "log_volume_zscore",
        "close_zscore",
        "rsi",
        "natr",
        "adx",
        "mfi",
        "bollinger_width",
        "bollinger_position",
    ]
    windows: tuple[Window, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> WindowedFeature:
        if len(set(self.windows)) != len(self.windows):
            raise ValueError(f"{self.kind}: windows repeat: {list(self.windows)}")
        if self.kind not in ONE_CANDLE_KINDS and min(self.windows) < 2:
            raise ValueError(f"{self.kind}: windows must be >= 2, got {list(self.windows)}")
        return self


class MacdFeature(_Strict):
    kind: Literal["macd"]
    fast: Window = 12
    slow: Window = 26
    signal: Window = 9

    @model_validator(mode="after")
    def _order(self) -> MacdFeature:
        if not 2 <= self.fast < self.slow:
            raise ValueError(f"macd: need 2 <= fast < slow, got fast={self.fast} slow={self.slow}")
        return self


HalfLifeDays = Annotated[float, Field(gt=0, le=1000)]


class SlowClockFeature(_Strict):
    """Exponentially weighted statistics of 1-candle log returns whose half-lives are
    given in days, converted to candles of the timeframe they are computed on: the
    same spec means the same clock on 1h candles and on daily closes resampled
    causally (``[[higher_timeframes]] timeframe = "1d"``). Columns are named
    ``%-<kind>_<days>d``."""

    kind: Literal["ewm_return", "ewm_log_downside_deviation", "ewm_sortino", "trend_distance"]
    halflives_days: tuple[HalfLifeDays, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> SlowClockFeature:
        if len(set(self.halflives_days)) != len(self.halflives_days):
            raise ValueError(f"{self.kind}: half-lives repeat: {list(self.halflives_days)}")
        return self


Feature = Annotated[WindowedFeature | MacdFeature | SlowClockFeature, Field(discriminator="kind")]


class HigherTimeframe(_Strict):
    """Features computed on candles resampled to ``timeframe`` (completed candles only)."""

    timeframe: str
    features: tuple[Feature, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid_timeframe(self) -> HigherTimeframe:
        timeframe_to_seconds(self.timeframe)
        return self


class FeatureSpec(_Strict):
    """Which features to build. See the module docstring for the file format."""

    features: tuple[Feature, ...] = Field(min_length=1)
    higher_timeframes: tuple[HigherTimeframe, ...] = ()
    # FreqAI's include_corr_pairlist: ``features`` also computed on each of these pairs'
    # candles of the same timeframe, joined by candle time (``<name>_ref_<BASE>_<QUOTE>``)
    reference_pairs: tuple[str, ...] = ()
    # FreqAI's include_shifted_candles: every feature also as it was 1..n candles before
    # (``<name>_shift-<i>``), so a row-wise model sees the recent path
    include_shifted_candles: int = Field(default=0, ge=0, le=100)

    @field_validator("reference_pairs")
    @classmethod
    def _references(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pair in value:
            base, _, quote = pair.partition("/")
            if not base or not quote or "/" in quote:
                raise ValueError(f"reference pair {pair!r} is not BASE/QUOTE")
        if len(set(value)) != len(value):
            raise ValueError(f"reference_pairs repeat: {list(value)}")
        return value

    @property
    def hash(self) -> str:
        """16 hex digits naming this feature set (includes :data:`PIPELINE_VERSION`)."""
        content = self.model_dump(mode="json")
        if not content["reference_pairs"]:
            del content["reference_pairs"]  # specs without them keep the hash they had
        if not content["include_shifted_candles"]:
            del content["include_shifted_candles"]  # nor specs without shifted candles
        canonical = json.dumps(
            {"pipeline_version": PIPELINE_VERSION, "spec": content},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def on_references(self) -> FeatureSpec:
        """What is computed on each reference pair: the base-timeframe features (their
        shifted copies come with the rest, after the join)."""
        return FeatureSpec(features=self.features)

    @property
    def needs_timeframe(self) -> bool:
        """Does building this spec need the candles' timeframe (higher timeframes, or
        slow-clock features on the base candles, whose half-lives are in days)?"""
        return bool(self.higher_timeframes) or any(
            isinstance(f, SlowClockFeature) for f in self.features
        )

    def lookback_candles(self, timeframe: str) -> int:
        """Candles of ``timeframe`` that the slow-clock features at one candle depend on
        (0 without any): a live history this long gives the values training saw. The
        other features settle within a few hundred candles (see features.indicators)."""
        from features.indicators import ewm_window

        base = timeframe_to_seconds(timeframe)
        needed = 0
        blocks = [(base, self.features)] + [
            (timeframe_to_seconds(h.timeframe), h.features) for h in self.higher_timeframes
        ]
        for seconds, features in blocks:
            for feature in features:
                if isinstance(feature, SlowClockFeature):
                    for days in feature.halflives_days:
                        candles = (
                            ewm_window(days * 86_400 / seconds) + 2
                        )  # + first return, + a partial candle
                        needed = max(needed, candles * seconds // base)
        return needed

    def check_timeframe(self, timeframe: str) -> None:
        """Every higher timeframe must be a whole multiple of ``timeframe`` (the same
        timeframe is allowed: its block is then computed on the candles themselves, so a
        spec with daily features runs unchanged on daily candles)."""
        base = timeframe_to_seconds(timeframe)
        for higher in self.higher_timeframes:
            seconds = timeframe_to_seconds(higher.timeframe)
            if seconds < base or seconds % base:
                raise SpecError(
                    f"higher timeframe {higher.timeframe} is not a multiple of {timeframe} above it",
                    hint="use e.g. 4h or 1d features on 1h candles",
                )


def default_spec() -> FeatureSpec:
    """The default feature set: regime-carrying returns, volatility, wicks and volume."""
    return FeatureSpec.model_validate(
        {
            "features": [
                {"kind": "log_return", "windows": [1, 4, 24]},
                {"kind": "realized_volatility", "windows": [24, 168]},
                {"kind": "log_range", "windows": [1, 24]},
                {"kind": "upper_wick", "windows": [1, 24]},
                {"kind": "lower_wick", "windows": [1, 24]},
                {"kind": "body", "windows": [1]},
                {"kind": "sqrt_wick", "windows": [1]},
                {"kind": "log_volume_zscore", "windows": [24, 168]},
                {"kind": "close_zscore", "windows": [24]},
                {"kind": "rsi", "windows": [14]},
                {"kind": "natr", "windows": [14]},
                {"kind": "adx", "windows": [14]},
                {"kind": "mfi", "windows": [14]},
                {"kind": "bollinger_width", "windows": [20]},
                {"kind": "bollinger_position", "windows": [20]},
                {"kind": "macd", "fast": 12, "slow": 26, "signal": 9},
            ],
        }
    )


def spec_with_higher_timeframe(spec: FeatureSpec, timeframe: str = "4h") -> FeatureSpec:
    """``spec`` plus a small set of ``timeframe`` features (returns, RSI, volatility)."""
    higher = HigherTimeframe.model_validate(
        {
            "timeframe": timeframe,
            "features": [
                {"kind": "log_return", "windows": [1, 6]},
                {"kind": "rsi", "windows": [14]},
                {"kind": "realized_volatility", "windows": [42]},
            ],
        }
    )
    return spec.model_copy(update={"higher_timeframes": (*spec.higher_timeframes, higher)})


def slow_clock_spec(halflives_days: tuple[float, ...] = (5, 10, 21)) -> FeatureSpec:
    """Regime features on a slow clock: from daily closes resampled causally, the
    exponentially weighted mean return, log downside deviation, Sortino ratio and
    distance from the average price, at each half-life (days), and the daily close's
    z-score against its 50-day mean (``%-close_zscore_50_1d``: above 0 exactly when the
    SMA50 rule is long)."""
    block: list[dict[str, object]] = [
        {"kind": kind, "halflives_days": list(halflives_days)}
        for kind in ("ewm_return", "ewm_log_downside_deviation", "ewm_sortino", "trend_distance")
    ]
    block.append({"kind": "close_zscore", "windows": [50]})
    return FeatureSpec.model_validate(
        {
            "features": [{"kind": "log_return", "windows": [1]}],
            "higher_timeframes": [{"timeframe": "1d", "features": block}],
        }
    )


def parse_spec(data: object, *, source: str = "feature spec") -> FeatureSpec:
    try:
        return FeatureSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: {validation_message(exc)}") from exc


def load_spec(path: Path) -> FeatureSpec:
    """Load a spec from a TOML (``.toml``) or JSON file."""
    if not path.exists():
        raise SpecError(f"{path}: feature spec not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(
            f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc})"
        ) from exc
    return parse_spec(data, source=str(path))


def reference_suffix(pair: str) -> str:
    """The column suffix of a reference pair's features: ``_ref_BTC_USDT``."""
    return "_ref_" + pair.replace("/", "_").replace(":", "_")
