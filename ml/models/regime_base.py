"""The regime-model contract: fit on regime features, read out causally, step online.

hmmlearn's ``base.py`` holds the algorithm and ``hmm.py`` the emissions. Here
:class:`RegimeModel` holds what every regime model offers its callers. The bundle,
the memo, serving and the training logs use only this contract; the Gaussian HMM
(:mod:`ml.models.regime`) and the jump-model vote (:mod:`ml.models.jump`) implement
it. Shapes: ``X`` (T, D) regime features, column 0 a return measure (it names the
states); probabilities (T, K) in the order of ``labels_``; decisions (T,) state
indices, -1 before the first complete row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator

FloatArray = NDArray[np.float64]
P = ParamSpec("P")
R = TypeVar("R")
_controller: Any = None


def one_thread(method: Callable[P, R]) -> Callable[P, R]:
    """Run ``method`` with BLAS and OpenMP (scikit-learn's k-means initialisation) on
    one thread. Both split sums over their threads and round differently with each
    count, so a regime model's numbers would depend on the machine's cores and on how
    many jobs share them (an executor's worker gets a share). Its matrices are tiny
    (K <= 6 states, a few features): one thread costs nothing (bench/regimes.py part 4
    times a 3,000-candle HMM fit and read-out both ways), and a fit is the same to the
    last digit wherever it runs."""

    @functools.wraps(method)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        global _controller
        if _controller is None:  # inspecting the loaded libraries is slow: once
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        with _controller.limit(limits=1):
            return method(*args, **kwargs)

    return wrapped


class OnlineFilter(Protocol):
    """One candle at a time (the live path): exactly the batch read-out's values."""

    @property
    def decision(self) -> int: ...

    def update(self, x: FloatArray) -> FloatArray: ...


class RegimeModel(BaseEstimator):  # type: ignore[misc]
    """What every regime model keeps (scikit-learn's estimator contract besides; the
    constructor takes ``random_state``). A new one is a subclass in its own module and
    one line of ``ml.models.REGIME_MODELS``; a spec configures it with ``[regime] kind``
    and ``params``.

    * ``labels_`` (after ``fit``): the state names, sorted by the model's declared rule;
    * :meth:`filter`: probabilities and decisions in one causal pass;
    * :meth:`online`: the same read-out one candle at a time;
    * :meth:`fingerprint_parts`: everything a read-out depends on (the memo's key);
    * :meth:`fold_report`: what a walk-forward fold records about its read-out.
    """

    labels_: list[str]
    n_states_: int

    def fit(self, X: FloatArray, y: object = None) -> RegimeModel:
        raise NotImplementedError

    def filter(self, X: FloatArray) -> tuple[FloatArray, NDArray[np.int64]]:
        raise NotImplementedError

    def online(self) -> OnlineFilter:
        raise NotImplementedError

    def fingerprint_parts(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def fold_report(self, X: FloatArray, rows: NDArray[np.int64]) -> dict[str, float]:
        """Measures of the read-out on ``rows`` of ``X`` (X from the first candle), for
        a fold's run; none by default."""
        return {}

    def predict_proba(self, X: FloatArray) -> FloatArray:
        """Filtered probabilities, (T, K), columns ``labels_``; causal."""
        return self.filter(X)[0]

    def predict(self, X: FloatArray) -> NDArray[np.int64]:
        """The persistent decision per row (a state index; -1 before the first row)."""
        return self.filter(X)[1]
