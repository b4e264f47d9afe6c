"""What every forecaster shares: the scikit-learn contract and a few helpers.

Every model is a ``sklearn.base.BaseEstimator``: parameters stored unchanged in
``__init__``, learned state with a trailing underscore, ``fit(X, y)`` returns
``self``, ``predict(X)`` gives one value per row of ``X`` (NaN where the model
cannot predict, e.g. before a full input sequence), ``predict_proba(X)`` the
class probabilities (n, 2) for classification.

``X`` is a DataFrame of feature columns (``%-...`` and, for regime-aware models,
``p_<regime>``) with one row per candle in time order; ``y`` the target per row
(NaN where unknown). Validation for early stopping is the chronologically last
``validation_fraction`` of the usable training rows, separated from the rest by
``validation_gap`` rows (the target horizon), so nothing after training leaks in.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

Task = Literal["classification", "regression"]


def split_validation(
    usable: NDArray[np.int64], fraction: float, gap: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Split usable row positions (ascending) into (train, validation), chronologically.

    The validation part is the last ``fraction`` of the rows; training rows end
    ``gap`` rows before the first validation row.
    """
    if fraction <= 0 or len(usable) < 20:
        return usable, usable[:0]
    n_val = max(1, int(len(usable) * fraction))
    val = usable[-n_val:]
    train = usable[usable < val[0] - gap]
    if len(train) < 10:
        return usable, usable[:0]
    return train, val


def resolve_device(device: str) -> str:
    """``auto``: a GPU when torch sees one (ROCm builds appear as ``cuda``), else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def proba_to_prediction(p_up: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(np.isfinite(p_up), (p_up > 0.5).astype("float64"), np.nan)


def as_frame(X: pd.DataFrame | NDArray[np.float64]) -> pd.DataFrame:
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype="float64"))
