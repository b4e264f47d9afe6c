"""The forecaster base class: the scikit-learn estimator contract plus capability tags.

Kept apart from :mod:`ml.models.base` (light helpers that reading a spec needs) because
it imports scikit-learn, which takes over half a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import BaseEstimator

from ml.models.params import Range


class OptionalFit(Protocol):
    """The ``fit`` of a forecaster that ``accepts_sample_weight`` (``sample_weight``, one
    per row) or ``continues_training`` (``init_model``, the model to continue from)."""

    def fit(self, X: pd.DataFrame, y: NDArray[np.float64], **options: Any) -> Any: ...


class Forecaster(BaseEstimator):  # type: ignore[misc]
    """The contract every forecaster keeps, and what the bundle and serving may ask of it.

    Capabilities are class-level tags, as scikit-learn's estimator tags, so callers ask
    instead of testing the type:

    * ``has_reasons``: :meth:`explain` gives a human-readable reason per row;
    * ``decides_class``: its ``predict`` is its own long/flat decision (classification),
      not ``p_up > 0.5``;
    * ``param_ranges``: the allowed range of each numeric parameter (checked in specs);
    * ``uses_torch``: it trains with torch (a worker process sets torch's threads; others
      need not import it, which costs a worker about a second);
    * ``forecasts``: its output forecasts the target (a probability or a value), so
      forecast metrics (accuracy, log loss, Brier; RMSE, rank IC) measure it; False
      for a decision such as a target exposure, where they would mean nothing;
    * :attr:`context_rows`: how many rows before a row its prediction reads (an LSTM's
      sequence), so the live path passes just enough history;
    * ``outputs_exposure``: column 1 of its ``predict_proba`` is a target exposure (a
      share of equity to hold), not a probability: the bundle names it ``exposure``,
      evaluations hold it, and ``[sizing]`` may size it;
    * ``accepts_sample_weight``: its ``fit`` takes ``sample_weight`` (one weight per row
      of ``X``), which ``[pipeline] weight_factor`` needs;
    * ``continues_training``: its ``fit`` takes ``init_model`` (a fitted model of its
      class on the same columns) to start from, which ``[lifetime] continual_learning``
      needs;
    * ``trainer_params``: which of ``n_jobs`` (threads), ``validation_gap`` (the
      embargo of its early-stopping slice) and ``random_state`` (the spec's seed) the
      trainer sets (each is a parameter of its constructor).

    After ``fit``: ``device_`` (where it trained) and ``history_`` (per-epoch losses;
    empty for models without epochs).

    Subclasses implement ``fit(X, y)``, ``predict(X)`` and, for classification,
    ``predict_proba(X)`` (n, 2), with the conventions of this module's docstring.
    """

    has_reasons: ClassVar[bool] = False
    decides_class: ClassVar[bool] = False
    uses_torch: ClassVar[bool] = False
    forecasts: ClassVar[bool] = True
    outputs_exposure: ClassVar[bool] = False
    accepts_sample_weight: ClassVar[bool] = False
    continues_training: ClassVar[bool] = False
    trainer_params: ClassVar[frozenset[str]] = frozenset()
    param_ranges: ClassVar[dict[str, Range]] = {}
    device_: str = "cpu"
    history_: Sequence[Mapping[str, float]] = ()

    @classmethod
    def params_problem(cls, params: Mapping[str, Any]) -> str | None:
        """What is wrong with ``params`` taken together (each is in its range), if
        anything: checked when a spec is read, before anything trains."""
        return None

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


def check_continuation(model: Forecaster, init_model: Forecaster) -> None:
    """Refuse to continue ``init_model`` unless it is of ``model``'s class and task and
    read the columns ``model`` was just given (``feature_names_in_``, set by its fit)."""
    theirs = [str(c) for c in getattr(init_model, "feature_names_in_", [])]
    ours = [str(c) for c in getattr(model, "feature_names_in_", [])]
    task, their_task = getattr(model, "task", None), getattr(init_model, "task", None)
    if type(init_model) is not type(model) or their_task != task:
        raise ValueError(
            f"{type(model).__name__} ({task}) cannot continue from "
            f"{type(init_model).__name__} ({their_task})"
        )
    if theirs != ours:
        pairs = zip(theirs, ours, strict=False)  # lists of other lengths: the shorter one
        first = next((f"{a!r} / {b!r}" for a, b in pairs if a != b), "one has more columns")
        raise ValueError(
            "continual learning needs the columns the previous model read: "
            f"it read {len(theirs)}, these are {len(ours)} (first difference: {first})"
        )
