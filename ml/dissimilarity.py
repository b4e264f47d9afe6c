"""How unlike the training data a row is: FreqAI's dissimilarity index (DI).

``DI = (distance from the row to its nearest training row) / (mean distance between
training rows)``, on standardised inputs. A DI well above 1 means the model is asked
about a market it has not seen; FreqAI's ``DI_threshold`` (typically 0.9..5) sets
``do_predict = 0`` there, and so does ``[trust] dissimilarity_threshold`` of a spec.

The training rows are subsampled evenly in time to ``max_reference_rows`` so that
scoring stays cheap (one distance per reference row per scored row). Causal: a row's
DI depends on that row and the fitted reference only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import BaseEstimator

FloatArray = NDArray[np.float64]


class DissimilarityIndex(BaseEstimator):  # type: ignore[misc]
    """``fit(X)`` on training inputs (rows x features); ``score(X)`` -> DI per row
    (NaN where a row has a non-finite input)."""

    def __init__(self, max_reference_rows: int = 2000) -> None:
        self.max_reference_rows = max_reference_rows

    def fit(self, inputs: pd.DataFrame) -> DissimilarityIndex:
        values = inputs.to_numpy(dtype="float64")
        values = values[np.isfinite(values).all(axis=1)]
        if len(values) < 2:
            raise ValueError("the dissimilarity index needs at least 2 complete training rows")
        self.columns_ = list(inputs.columns)
        self.mean_ = values.mean(axis=0)
        scale = values.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        pick = np.linspace(0, len(values) - 1, min(len(values), self.max_reference_rows))
        self.reference_ = (values[pick.astype(int)] - self.mean_) / self.scale_
        distances = _distances(self.reference_, self.reference_)
        np.fill_diagonal(distances, np.nan)
        self.mean_distance_ = float(np.nanmean(distances))
        return self

    def score(self, inputs: pd.DataFrame) -> FloatArray:
        values = (inputs[self.columns_].to_numpy(dtype="float64") - self.mean_) / self.scale_
        out = np.full(len(values), np.nan)
        complete = np.isfinite(values).all(axis=1)
        if complete.any() and self.mean_distance_ > 0:
            nearest = _distances(values[complete], self.reference_).min(axis=1)
            out[complete] = nearest / self.mean_distance_
        return out


ROWS_PER_BLOCK = 64  # rows of ``a`` per block: 64 x 2,000 x 30 features = 30 MB


def _distances(a: FloatArray, b: FloatArray) -> FloatArray:
    """Euclidean distances between the rows of ``a`` and of ``b`` (len(a) x len(b)).

    Each distance is summed from its own differences, so a row's distances do not depend
    on which other rows are scored with it: the DI of a candle is the same on a prefix of
    the candles, to the bit (the expanded ``|a|^2 + |b|^2 - 2ab`` form goes through a
    matrix product whose rounding changes with the number of rows)."""
    out = np.empty((len(a), len(b)))
    for start in range(0, len(a), ROWS_PER_BLOCK):
        block = a[start : start + ROWS_PER_BLOCK, None, :] - b[None, :, :]
        out[start : start + ROWS_PER_BLOCK] = np.sqrt(np.einsum("ijk,ijk->ij", block, block))
    return out
