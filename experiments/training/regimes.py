"""`tradingbot regimes`: fit the regime HMM on the past, write causal regimes for every candle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from common.atomic import atomic_path
from common.errors import SpecError
from common.layout import UserDir
from experiments.spec_data import cached_features
from features.data import load_candles
from features.feature_spec import default_spec
from ml.bundle import regime_frame
from ml.config import HmmRegimeConfig
from ml.filtering import switches_per_1000
from ml.models.regime import RegimeHMM
from ml.plots import regime_plot


@dataclass(frozen=True)
class RegimeSummary:
    out: Path
    plot: Path
    train_end: datetime
    train_rows: int
    labels: list[str]
    return_means: list[float]
    return_stds: list[float]
    switches_train: float
    switches_after: float
    share: dict[str, float]
    bic: dict[int, float]


REGIME_STAGES = (
    "loading candles and features",
    "fitting the HMM",
    "filtering every candle (forward only)",
    "writing the table and the plot",
)


def run_regimes(
    *,
    pair: str,
    timeframe: str,
    exchange: str,
    layout: UserDir,
    states: int | str,
    train_end: datetime | None,
    out: Path,
    config: HmmRegimeConfig | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> RegimeSummary:
    """Fit the HMM before ``train_end`` and write the filtered regimes of every candle.
    ``progress`` is called with the name of each of the REGIME_STAGES as it starts."""
    say = progress or (lambda _text: None)
    config = config or HmmRegimeConfig()
    say(REGIME_STAGES[0])
    candles = load_candles(layout, exchange, pair, timeframe)
    features = cached_features(candles, default_spec(), layout, pair, timeframe, exchange)
    cut = _training_rows(candles, train_end)
    n_states: int | str = "auto" if str(states) == "auto" else int(states)
    say(REGIME_STAGES[1])
    x = features[list(config.columns)].to_numpy(dtype="float64")
    model = RegimeHMM(**{**config.estimator_params(seed), "n_states": n_states}).fit(x[:cut])
    say(REGIME_STAGES[2])
    regimes = regime_frame(model, features, config.columns)
    say(REGIME_STAGES[3])
    table = pd.concat(
        [candles[["date"]], regimes[["regime"]], regimes.drop(columns="regime")], axis=1
    )
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    plot = regime_plot(
        candles["date"],
        candles["close"],
        regimes["regime"],
        out.with_suffix(".png"),
        f"{pair} {timeframe}: filtered regimes (fitted before {candles['date'].iloc[cut]:%Y-%m-%d})",
    )
    return _summary(model, regimes["regime"], candles["date"], cut, out, plot)


def _training_rows(candles: pd.DataFrame, train_end: datetime | None) -> int:
    """Candles the HMM is fitted on: those before ``train_end`` (default: the first 70%)."""
    if train_end is None:
        cut = int(len(candles) * 0.7)
    else:
        cut = int((candles["date"] < pd.Timestamp(train_end)).sum())
    if cut < 500:
        raise SpecError(
            f"only {cut} candles before the training end {train_end}",
            hint="move --train-end later (the model needs at least 500 candles to fit)",
        )
    return cut


def _summary(
    model: RegimeHMM, names: pd.Series, dates: pd.Series, cut: int, out: Path, plot: Path
) -> RegimeSummary:
    # the decisions regime_frame already named (-1 = none yet): no second pass of the filter
    named = pd.Categorical(names, categories=["", *model.labels_])
    decisions = named.codes.astype("int64") - 1
    valid = decisions >= 0
    labels = names[valid]
    return RegimeSummary(
        out=out,
        plot=plot,
        train_end=dates.iloc[cut].to_pydatetime(),
        train_rows=cut,
        labels=list(model.labels_),
        return_means=[float(v) for v in model.return_means_],
        return_stds=[float(v) for v in model.return_stds_],
        switches_train=switches_per_1000(decisions[:cut][valid[:cut]]),
        switches_after=switches_per_1000(decisions[cut:]),
        share={label: float((labels == label).mean()) for label in model.labels_},
        bic={int(k): float(v) for k, v in model.bic_.items()},
    )


def parse_day(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = pd.Timestamp(value)
    except ValueError:
        raise SpecError(f"invalid date {value!r}", hint="use YYYY-MM-DD") from None
    return (
        parsed.tz_localize("UTC") if parsed.tzinfo is None else parsed.tz_convert("UTC")
    ).to_pydatetime()
