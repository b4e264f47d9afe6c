"""Regime detection: a Gaussian HMM (hmmlearn) read out with the causal forward filter.

Input ``X``: (T, D) regime features, column 0 the 1-candle log return (used to
name the states), e.g. ``%-log_return_1, %-sqrt_wick_1, %-log_volume_zscore_168``.
Features are standardised with statistics of the training rows: hmmlearn's
``min_covar`` and covariance prior would otherwise swamp raw hourly returns.

``predict_proba`` gives *filtered* probabilities (forward recursion with the
fitted parameters); ``predict`` the persistent regime decision (hysteresis on
those probabilities). Both are causal. Rows with a NaN feature (warm-up) get NaN
probabilities before the first complete row and carry the prediction forward
(no observation) after it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import numpy as np
from hmmlearn.hmm import GaussianHMM
from numpy.typing import NDArray

from ml.filtering import FloatArray, ForwardFilter, gaussian_log_likelihood
from ml.models.regime_base import RegimeModel, one_thread

logging.getLogger("hmmlearn").setLevel(logging.ERROR)


def fit_em(make: Callable[[str], GaussianHMM], z: FloatArray) -> GaussianHMM:
    """EM on ``z`` (T, D) of the model ``make(implementation)`` builds, set up to start.

    hmmlearn's forward-backward in scaled probabilities costs about 60% of its
    log-space default per iteration and reaches the same fit (the same iterations,
    likelihoods equal to about 1e-12: ``bench/hmm_stopping.py``). It fails instead when
    a candle is too unlikely under every state for a float (a warm start from the fold
    before meeting a new extreme candle): that fit runs again, from the start, in log
    space. The fitted model scores in log space, which never underflows.
    """

    def fitted(implementation: str) -> GaussianHMM:
        model = make(implementation)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(z)

    try:
        model = fitted("scaling")
    except ValueError as error:
        if "underflow" not in str(error):
            raise
        model = fitted("log")
    model.implementation = "log"
    return model


def name_states(return_means: FloatArray, return_stds: FloatArray) -> list[str]:
    """Deterministic names from the fitted return mean and volatility of each state.

    Highest mean return: ``bull``; lowest: ``bear``; of the others, the calmest is
    ``sideways``; with 4+ states the most volatile of the rest is ``crash`` when
    its mean is negative, else ``volatile``; further states ``volatile_2``, ...
    """
    k = len(return_means)
    names = [""] * k
    order = np.argsort(return_means, kind="stable")
    names[order[-1]] = "bull"
    if k == 1:
        return names
    names[order[0]] = "bear"
    rest = [int(i) for i in order[1:-1]]
    if not rest:
        return names
    rest.sort(key=lambda i: return_stds[i])
    names[rest[0]] = "sideways"
    others = sorted(rest[1:], key=lambda i: -return_stds[i])
    for n, i in enumerate(others):
        if n == 0:
            names[i] = "crash" if return_means[i] < 0 else "volatile"
        else:
            names[i] = f"volatile_{n + 1}"
    return names


class RegimeHMM(RegimeModel):
    """Gaussian HMM regimes with filtered probabilities and a persistent decision.

    Parameters
    ----------
    n_states: number of hidden states, or ``"auto"`` to choose 2..``max_states`` by BIC.
    covariance_type: ``"full"`` or ``"diag"``.
    n_restarts: EM runs from different random initialisations; the best likelihood wins.
    switch_margin: persistence control: the decision moves to another state only when
        its filtered probability exceeds the current state's by this much.
    init_from: a fitted ``RegimeHMM`` with the same number of states (the previous
        walk-forward fold's): EM starts once from its parameters instead of from
        ``n_restarts`` random ones. It was fitted on earlier candles, so nothing of the
        future enters; it only saves EM iterations.
    """

    def __init__(
        self,
        n_states: int | Literal["auto"] = 3,
        covariance_type: Literal["full", "diag"] = "full",
        n_restarts: int = 4,
        n_iter: int = 200,
        tol: float = 1e-4,
        max_states: int = 5,
        switch_margin: float = 0.5,
        random_state: int = 0,
        init_from: RegimeHMM | None = None,
    ) -> None:
        self.n_states = n_states
        self.covariance_type = covariance_type
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.tol = tol
        self.max_states = max_states
        self.switch_margin = switch_margin
        self.random_state = random_state
        self.init_from = init_from

    # -- fitting ---------------------------------------------------------------------

    def _em_model(self, k: int, seed: int, implementation: str, **options: Any) -> GaussianHMM:
        return GaussianHMM(
            n_components=k,
            covariance_type=self.covariance_type,
            n_iter=self.n_iter,
            tol=self.tol,
            random_state=seed,
            implementation=implementation,
            **options,
        )

    def _warm(self, z: FloatArray, k: int) -> tuple[float, GaussianHMM] | None:
        """One EM run from ``init_from``'s parameters, moved into this fit's standardised
        units; None when it does not apply (another number of states or covariance type)."""
        previous = self.init_from
        if previous is None or previous.n_states_ != k:
            return None
        ratio = previous.scale_ / self.scale_
        covars = previous.covars_ * np.outer(ratio, ratio)
        if self.covariance_type == "diag":
            covars = np.diagonal(covars, axis1=1, axis2=2).copy()

        def make(implementation: str) -> GaussianHMM:
            model = self._em_model(k, self.random_state, implementation, init_params="")
            model.startprob_ = previous.startprob_.copy()
            model.transmat_ = previous.transmat_.copy()
            model.means_ = (
                previous.means_ * previous.scale_ + previous.mean_ - self.mean_
            ) / self.scale_
            model.covars_ = covars.copy()
            return model

        model = fit_em(make, z)
        return float(model.score(z)), model

    def _fit_one(self, z: FloatArray, k: int) -> tuple[float, GaussianHMM]:
        warm = self._warm(z, k)
        if warm is not None:
            return warm
        best: tuple[float, GaussianHMM] | None = None
        for restart in range(self.n_restarts):
            model = fit_em(partial(self._em_model, k, self.random_state + restart), z)
            score = float(model.score(z))  # training likelihood, for model choice only
            if best is None or score > best[0]:
                best = (score, model)
        assert best is not None
        return best

    @one_thread
    def fit(self, X: FloatArray, y: object = None) -> RegimeHMM:
        x = np.asarray(X, dtype="float64")
        if x.ndim != 2:
            raise ValueError(f"X must be 2-D (candles, features), got shape {x.shape}")
        complete = np.isfinite(x).all(axis=1)
        x = x[complete]
        if len(x) < 50:
            raise ValueError(f"need at least 50 complete rows to fit a regime model, got {len(x)}")
        self.mean_ = x.mean(axis=0)
        self.scale_ = x.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        z = (x - self.mean_) / self.scale_
        candidates = (
            range(2, self.max_states + 1) if self.n_states == "auto" else [int(self.n_states)]
        )
        self.bic_: dict[int, float] = {}
        fits: dict[int, tuple[float, GaussianHMM]] = {}
        for k in candidates:
            fits[k] = self._fit_one(z, k)
            self.bic_[k] = float(fits[k][1].bic(z))
        best_k = min(self.bic_, key=lambda k: self.bic_[k])
        self.train_log_likelihood_, chosen = fits[best_k]
        self.em_iterations_ = int(chosen.monitor_.iter)  # of the chosen run
        self.warm_started_ = self.init_from is not None and chosen.init_params == ""
        self.n_states_ = int(chosen.n_components)
        self.startprob_ = np.asarray(chosen.startprob_, dtype="float64")
        self.transmat_ = np.asarray(chosen.transmat_, dtype="float64")
        self.means_ = np.asarray(chosen.means_, dtype="float64")
        self.covars_ = np.asarray(chosen.covars_, dtype="float64")  # (K, D, D) for every type
        self.n_features_in_ = x.shape[1]
        return_means = self.means_[:, 0] * self.scale_[0] + self.mean_[0]
        return_stds = np.sqrt(self.covars_[:, 0, 0]) * self.scale_[0]
        self.labels_ = name_states(return_means, return_stds)
        self.return_means_ = return_means
        self.return_stds_ = return_stds
        self.init_from = None  # used once: a fitted model does not carry its predecessors
        return self

    # -- causal read-out -------------------------------------------------------------

    def log_likelihood(self, X: FloatArray) -> FloatArray:
        """Emission log-likelihood (T, K) of each candle under each state; NaN rows give 0."""
        x = np.asarray(X, dtype="float64")
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have shape (T, {self.n_features_in_}), got {x.shape}")
        out = np.zeros((len(x), self.n_states_))
        complete = np.isfinite(x).all(axis=1)
        if complete.any():
            z = (x[complete] - self.mean_) / self.scale_
            out[complete] = gaussian_log_likelihood(z, self.means_, self.covars_)
        return out

    @one_thread
    def filter(self, X: FloatArray) -> tuple[FloatArray, NDArray[np.int64]]:
        """Filtered probabilities (T, K) and the persistent decision (T,) in one pass.

        :meth:`predict_proba` and :meth:`predict` each give one of the two; callers that
        need both use this and run the forward recursion once.
        """
        x = np.asarray(X, dtype="float64")
        loglik = self.log_likelihood(x)
        complete = np.isfinite(x).all(axis=1)
        probabilities = np.full((len(x), self.n_states_), np.nan)
        decisions = np.full(len(x), -1, dtype=np.int64)
        if not complete.any():
            return probabilities, decisions
        start = int(np.argmax(complete))
        log_alpha, decisions[start:] = self.online().filter.update(loglik[start:])
        probabilities[start:] = np.exp(log_alpha)
        return probabilities, decisions

    def fingerprint_parts(self) -> tuple[Any, ...]:
        return (
            self.startprob_,
            self.transmat_,
            self.means_,
            self.covars_,
            self.mean_,
            self.scale_,
            list(self.labels_),
            float(self.switch_margin),
        )

    def online(self) -> OnlineRegimeFilter:
        """A stateful filter that takes one candle at a time (the live path)."""
        return OnlineRegimeFilter(self)


class OnlineRegimeFilter:
    """Filtered probabilities and the persistent decision, one candle at a time, O(K^2).

    Runs the same compiled recursion as the batch :meth:`RegimeHMM.filter`
    (``ml.filtering.ForwardFilter``), so it gives exactly its values for the same rows.
    """

    def __init__(self, model: RegimeHMM) -> None:
        self.model = model
        self.filter = ForwardFilter(model.transmat_, model.startprob_, model.switch_margin)

    @property
    def decision(self) -> int:
        return self.filter.decision

    def update_log_likelihood(self, log_likelihood: FloatArray) -> FloatArray:
        """Probabilities after one more candle's emission log-likelihood (K,)."""
        log_alpha, _ = self.filter.update(log_likelihood)
        return np.asarray(np.exp(log_alpha[0]))

    def update(self, x: FloatArray) -> FloatArray:
        """Probabilities after one more candle's regime features ``x`` (D,)."""
        row = np.asarray(x, dtype="float64").reshape(1, -1)
        if not self.filter.started and not np.isfinite(row).all():
            return np.full(self.model.n_states_, np.nan)
        return self.update_log_likelihood(self.model.log_likelihood(row)[0])
