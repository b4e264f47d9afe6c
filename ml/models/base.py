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

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import BaseEstimator

if TYPE_CHECKING:
    from ml.models.params import Range

Task = Literal["classification", "regression"]


class Forecaster(BaseEstimator):  # type: ignore[misc]
    """The contract every forecaster keeps, and what the bundle and serving may ask of it.

    Capabilities are class-level tags, as scikit-learn's estimator tags, so callers ask
    instead of testing the type:

    * ``has_reasons``: :meth:`explain` gives a human-readable reason per row;
    * ``decides_class``: its ``predict`` is its own long/flat decision (classification),
      not ``p_up > 0.5``;
    * ``param_ranges``: the allowed range of each numeric parameter (checked in specs);
    * :attr:`context_rows`: how many rows before a row its prediction reads (an LSTM's
      sequence), so the live path passes just enough history.

    Subclasses implement ``fit(X, y)``, ``predict(X)`` and, for classification,
    ``predict_proba(X)`` (n, 2), with the conventions of this module's docstring.
    """

    has_reasons: ClassVar[bool] = False
    decides_class: ClassVar[bool] = False
    param_ranges: ClassVar[dict[str, Range]] = {}

    @property
    def context_rows(self) -> int:
        """Rows before a row that its prediction depends on (0: the row alone)."""
        return 0

    def fit(self, X: pd.DataFrame, y: Any) -> Forecaster:
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]:
        raise NotImplementedError

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        raise NotImplementedError(f"{type(self).__name__} gives no class probabilities")

    def explain(self, X: pd.DataFrame) -> list[str]:
        """One reason per row (only for ``has_reasons`` models)."""
        raise NotImplementedError(f"{type(self).__name__} gives no reasons")


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
