"""Targets: what a forecaster predicts, from the experiment spec.

``return``: the forward log return over ``horizon`` candles,
``y_t = log(close_{t+h} / close_t)``; ``direction``: 1 when that return is
positive, else 0; ``direction_band``: 1 when it is above ``band``, 0 when it is
below ``-band``, and no target (NaN) in between: a move that would not pay a
round trip's fees (e.g. ``band = 0.002`` for 0.1% per side) is neither trained on
nor scored, so a day-scale model (e.g. ``horizon = 24`` on hourly candles) learns
the moves worth trading. The last ``horizon`` rows have no target (NaN): they are never trained on, and an
embargo of at least ``horizon`` candles separates training rows from test rows so
no training target overlaps a test candle.

``volatility`` and ``downside_volatility``: the risk of the next ``horizon`` candles,
the log of their annualised realised volatility (:mod:`ml.volatility`; downside: of
the falls only), regressed and judged by QLIKE against the classical forecasts.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ml.volatility import forward_log_volatility, periods_per_year_of

RISK_KINDS = ("volatility", "downside_volatility")


class TargetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["direction", "direction_band", "return", "volatility", "downside_volatility"] = (
        "direction"
    )
    horizon: int = Field(default=1, ge=1, le=10_000)
    band: float = Field(default=0.002, ge=0.0, lt=1.0)  # direction_band: |log return| to count

    @property
    def task(self) -> Literal["classification", "regression"]:
        return "regression" if self.kind == "return" or self.is_risk else "classification"

    @property
    def is_risk(self) -> bool:
        """A volatility target: forecast risk, judged by QLIKE, not traded on its sign."""
        return self.kind in RISK_KINDS


def forward_log_return(close: pd.Series, horizon: int) -> pd.Series:
    """log(close_{t+h} / close_t); NaN for the last ``horizon`` rows. Uses the future by design."""
    values = np.log(close.to_numpy(dtype="float64"))
    out = np.full_like(values, np.nan)
    out[:-horizon] = values[horizon:] - values[:-horizon]
    return pd.Series(out, index=close.index)


def make_target(candles: pd.DataFrame, spec: TargetSpec) -> pd.Series:
    if spec.is_risk:
        volatility = forward_log_volatility(
            candles["close"],
            spec.horizon,
            periods_per_year_of(candles["date"]),
            downside=spec.kind == "downside_volatility",
        )
        return pd.Series(volatility, index=candles.index)
    forward = forward_log_return(candles["close"], spec.horizon)
    if spec.kind == "return":
        return forward
    if spec.kind == "direction_band":
        up = (forward > spec.band).astype("float64")
        return up.where(forward.notna() & (forward.abs() > spec.band))
    return (forward > 0).astype("float64").where(forward.notna())
