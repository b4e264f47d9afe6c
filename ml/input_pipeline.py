"""FreqAI's data pipeline on a forecaster's inputs, fitted on one fold's training rows.

The steps of ``[pipeline]`` (:class:`ml.config.PipelineConfig`), in FreqAI's order
(``freqai_interface.define_data_pipeline``), each off unless the spec asks for it:

1. every input column scaled to [-1, 1] by its training minimum and maximum (the space
   the later steps work in, as in FreqAI);
2. ``principal_component_analysis``: the components that explain 99.9% of the scaled
   training rows' variance, scaled to [-1, 1] again; the forecaster then reads these
   (``pc_0``, ``pc_1``, ...) instead of the inputs;
3. ``use_SVM_to_remove_outliers``: a linear one-class SVM (``SGDOneClassSVM`` with
   ``svm_params``) fitted on the rows of step 2;
4. ``use_DBSCAN_to_remove_outliers``: DBSCAN with FreqAI's automatic ``eps`` (the elbow
   of the mean nearest-neighbour distances) and ``min_samples`` (a quarter of the rows);
5. ``noise_standard_deviation``: Gaussian noise of that deviation, in the scaled space,
   added to the training rows only;
6. ``weight_factor``: training rows weighted ``exp(-age / (weight_factor * rows))``, age
   counted in rows back from the newest, as FreqAI's ``set_weights_higher_recent``.

A training row an outlier detector flags is not trained on (its target is withheld, so
a sequence model still reads it as history); a row it flags later is not traded
(``do_predict = 0``, the adapter's ``outlier`` count). A detector that flags more than
``outlier_protection_percentage`` of the training rows is not used at all for the fold
(FreqAI's former protection: it would discard too much), and the fold says so.

Causal by construction: everything is fitted on the training rows, and a row's output
(its scaled inputs, components and outlier flag) depends on that row alone. FreqAI's
DBSCAN, by contrast, clusters a whole prediction window together with the training rows,
so a row's flag there depends on later rows; here a row is an outlier when no core
sample of the training fit lies within ``eps`` of it, which is DBSCAN's own noise rule
for a point that joins a fitted clustering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.config import PipelineConfig

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

PCA_VARIANCE = 0.999  # FreqAI's n_components
# DBSCAN's neighbour search is (rows x rows / 4) distances: above this many training rows
# it is fitted on this many evenly spaced ones (FreqAI fits on all of them)
DBSCAN_MAX_ROWS = 4000


@dataclass(frozen=True)
class TrainingRows:
    """What the forecaster is fitted on: ``inputs`` (transformed, noise added to the
    training rows), ``target`` (NaN where a row is not trained on) and ``sample_weight``
    (None without ``weight_factor``)."""

    inputs: pd.DataFrame
    target: FloatArray
    sample_weight: FloatArray | None


def _scaler(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-column centre and half-range mapping the rows' min..max to -1..1 (a constant
    column maps to 0)."""
    low, high = values.min(axis=0), values.max(axis=0)
    half = (high - low) / 2.0
    return (high + low) / 2.0, np.where(half > 0, half, 1.0)


def recency_weights(rows: int, weight_factor: float) -> FloatArray:
    """FreqAI's ``set_weights_higher_recent``: the newest row weighs 1, a row ``age``
    rows older ``exp(-age / (weight_factor * rows))``. Shape (rows,)."""
    age = np.arange(rows - 1, -1, -1, dtype="float64")
    return np.exp(-age / (weight_factor * rows))


def dbscan_eps_and_min_samples(values: FloatArray) -> tuple[float, int]:
    """FreqAI's automatic DBSCAN parameters: ``min_samples`` a quarter of the rows, ``eps``
    at the elbow of the sorted mean distances to the ``min_samples`` nearest rows."""
    from sklearn.neighbors import NearestNeighbors

    min_samples = max(2, int(len(values) * 0.25))
    distances, _ = NearestNeighbors(n_neighbors=min_samples).fit(values).kneighbors(values)
    curve = np.sort(distances, axis=0).mean(axis=1)
    span = curve.max() - curve.min()
    if span <= 0:
        return float(curve[0]) or 1e-12, min_samples
    normalised = (curve - curve.min()) / span
    line = np.linspace(normalised[0], normalised[-1], len(curve))
    elbow = int(np.argmax(np.abs(normalised - line)))
    # FreqAI rotates the elbow point 45 degrees about the chord point below it
    height = line[elbow] + np.cos(np.pi / 4) * (normalised[elbow] - line[elbow])
    return float(height * (curve[-1] - curve[0]) + curve[0]), min_samples


class InputPipeline:
    """``fit`` on a fold's training inputs (rows x columns, time order) and targets;
    ``training_rows`` gives what the forecaster is fitted on; ``transform`` and
    ``outliers`` read any rows alike (NaN rows stay NaN and are never outliers)."""

    def __init__(self, config: PipelineConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = seed

    # -- fitting -----------------------------------------------------------------------

    def fit(self, inputs: pd.DataFrame, target: FloatArray) -> InputPipeline:
        values = inputs.to_numpy(dtype="float64")
        complete = np.isfinite(values).all(axis=1)
        if complete.sum() < 10:
            raise ValueError(
                f"[pipeline] needs at least 10 complete training rows, got {int(complete.sum())}"
            )
        self.columns_ = [str(c) for c in inputs.columns]
        self.centre_, self.half_range_ = _scaler(values[complete])
        scaled = (values[complete] - self.centre_) / self.half_range_
        self.pca_: Any = None
        if self.config.principal_component_analysis:
            from sklearn.decomposition import PCA

            self.pca_ = PCA(n_components=PCA_VARIANCE, random_state=self.seed).fit(scaled)
            components = self.pca_.transform(scaled)
            self.pca_centre_, self.pca_half_range_ = _scaler(components)
            scaled = (components - self.pca_centre_) / self.pca_half_range_
        self.dropped_detectors_: list[str] = []
        self.svm_: Any = None
        self.core_samples_: FloatArray | None = None
        self.eps_ = 0.0
        limit = self.config.outlier_protection_percentage / 100.0
        if self.config.use_svm_to_remove_outliers:
            from sklearn.linear_model import SGDOneClassSVM

            params = {"random_state": self.seed, **self.config.svm_params}
            self.svm_ = SGDOneClassSVM(**params).fit(scaled)
            if (self.svm_.predict(scaled) == -1).mean() > limit:
                self.svm_ = None
                self.dropped_detectors_.append("svm")
        if self.config.use_dbscan_to_remove_outliers:
            self._fit_dbscan(scaled)
            if self._dbscan_outliers(scaled).mean() > limit:
                self.core_samples_ = None
                self.dropped_detectors_.append("dbscan")
        self.training_outliers_ = int(self._flag(scaled).sum())
        return self

    def _fit_dbscan(self, scaled: FloatArray) -> None:
        from sklearn.cluster import DBSCAN

        if len(scaled) > DBSCAN_MAX_ROWS:
            scaled = scaled[np.linspace(0, len(scaled) - 1, DBSCAN_MAX_ROWS).astype(int)]
        self.eps_, min_samples = dbscan_eps_and_min_samples(scaled)
        fitted = DBSCAN(eps=self.eps_, min_samples=min_samples).fit(scaled)
        self.core_samples_ = scaled[fitted.core_sample_indices_]

    def training_rows(self, inputs: pd.DataFrame, target: FloatArray) -> TrainingRows:
        """The fitted training rows as the forecaster is fitted on them (see module doc)."""
        transformed = self.transform(inputs)
        fit_target = np.asarray(target, dtype="float64").copy()
        fit_target[self.outliers(inputs)] = np.nan
        values = transformed.to_numpy(dtype="float64", copy=True)
        trained = np.isfinite(values).all(axis=1) & np.isfinite(fit_target)
        sigma = self.config.noise_standard_deviation
        if sigma > 0:
            rng = np.random.default_rng(self.seed)
            noise = rng.normal(0.0, sigma, size=(int(trained.sum()), values.shape[1]))
            # the deviation is in the scaled space, as FreqAI's: the components are read
            # scaled, the inputs unscaled (so their noise is scaled back per column)
            values[trained] += noise * self._output_half_range()
            transformed = pd.DataFrame(values, columns=transformed.columns, index=inputs.index)
        weights = None
        if self.config.weight_factor > 0:
            weights = np.ones(len(values))
            weights[trained] = recency_weights(int(trained.sum()), self.config.weight_factor)
        return TrainingRows(transformed, fit_target, weights)

    # -- reading rows ------------------------------------------------------------------

    def _scaled(self, values: FloatArray) -> FloatArray:
        scaled = (values - self.centre_) / self.half_range_
        if self.pca_ is not None:
            scaled = (self.pca_.transform(scaled) - self.pca_centre_) / self.pca_half_range_
        return np.asarray(scaled, dtype="float64")

    def _output_half_range(self) -> FloatArray:
        """What one unit of the scaled space is in the forecaster's columns."""
        if self.pca_ is not None:
            return np.ones(len(self.output_columns))
        return np.asarray(self.half_range_, dtype="float64")

    def _values(self, inputs: pd.DataFrame) -> tuple[FloatArray, BoolArray]:
        if [str(c) for c in inputs.columns] != self.columns_:
            raise ValueError(
                f"[pipeline] was fitted on columns {self.columns_}, "
                f"got {[str(c) for c in inputs.columns]}"
            )
        values = inputs.to_numpy(dtype="float64")
        return values, np.isfinite(values).all(axis=1)

    @property
    def output_columns(self) -> list[str]:
        if self.pca_ is None:
            return self.columns_
        return [f"pc_{i}" for i in range(int(self.pca_.n_components_))]

    def transform(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """The forecaster's view of ``inputs``: unchanged, or their components (scaled
        to the training rows' [-1, 1]) with ``principal_component_analysis``."""
        if self.pca_ is None:
            self._values(inputs)
            return inputs
        values, complete = self._values(inputs)
        out = np.full((len(values), len(self.output_columns)), np.nan)
        if complete.any():
            out[complete] = self._scaled(values[complete])
        return pd.DataFrame(out, columns=self.output_columns, index=inputs.index)

    def _dbscan_outliers(self, scaled: FloatArray) -> BoolArray:
        if self.core_samples_ is None or not len(self.core_samples_):
            return np.zeros(len(scaled), dtype=bool)
        from sklearn.neighbors import NearestNeighbors

        nearest, _ = NearestNeighbors(n_neighbors=1).fit(self.core_samples_).kneighbors(scaled)
        return np.asarray(nearest[:, 0] > self.eps_, dtype=bool)

    def _flag(self, scaled: FloatArray) -> BoolArray:
        flagged = np.zeros(len(scaled), dtype=bool)
        if self.svm_ is not None:
            flagged |= self.svm_.predict(scaled) == -1
        if self.core_samples_ is not None:
            flagged |= self._dbscan_outliers(scaled)
        return flagged

    @property
    def detects_outliers(self) -> bool:
        return self.svm_ is not None or self.core_samples_ is not None

    def outliers(self, inputs: pd.DataFrame) -> BoolArray:
        """Per row: does an outlier detector flag it? (False for incomplete rows.)"""
        values, complete = self._values(inputs)
        flagged = np.zeros(len(values), dtype=bool)
        if self.detects_outliers and complete.any():
            flagged[complete] = self._flag(self._scaled(values[complete]))
        return flagged

    def report(self) -> dict[str, float]:
        """What the fit did, as run metrics: components kept, training rows flagged,
        detectors dropped by the protection."""
        out = {"pipeline.training_outliers": float(self.training_outliers_)}
        if self.pca_ is not None:
            out["pipeline.pca_components"] = float(self.pca_.n_components_)
        asked = {
            "svm": self.config.use_svm_to_remove_outliers,
            "dbscan": self.config.use_dbscan_to_remove_outliers,
        }
        for name in (name for name, on in asked.items() if on):
            out[f"pipeline.{name}_protected"] = float(name in self.dropped_detectors_)
        return out
