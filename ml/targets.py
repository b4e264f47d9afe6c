"""Targets: what a forecaster predicts, from the experiment spec.

``return``: the forward log return over ``horizon`` candles,
``y_t = log(close_{t+h} / close_t)``; ``direction``: 1 when that return is
positive, else 0. The last ``horizon`` rows have no target (NaN): they are never
trained on, and an embargo of at least ``horizon`` candles separates training
rows from test rows so no training target overlaps a test candle.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field


class TargetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["direction", "return"] = "direction"
    horizon: int = Field(default=1, ge=1, le=10_000)

    @property
    def task(self) -> Literal["classification", "regression"]:
        return "classification" if self.kind == "direction" else "regression"


def forward_log_return(close: pd.Series, horizon: int) -> pd.Series:
    """log(close_{t+h} / close_t); NaN for the last ``horizon`` rows. Uses the future by design."""
    values = np.log(close.to_numpy(dtype="float64"))
    out = np.full_like(values, np.nan)
    out[:-horizon] = values[horizon:] - values[:-horizon]
    return pd.Series(out, index=close.index)


def make_target(candles: pd.DataFrame, spec: TargetSpec) -> pd.Series:
    forward = forward_log_return(candles["close"], spec.horizon)
    if spec.kind == "return":
        return forward
    return (forward > 0).astype("float64").where(forward.notna())
