"""Regime detection with statistical jump models, read out causally.

A jump model (Nystrup et al.; Shu, Yu and Mulvey 2024) clusters rows of regime
features into ``K`` states while paying ``jump_penalty`` for every change of
state, so the states it finds last (weeks on daily features, not hours). Fitting
alternates the state sequence (dynamic programming over the whole training
window) with the state centres (means of their rows), from several k-means++
starts. Reading out uses only the *online* recursion: the value of ending in
state k at candle t,

    V_t(k) = L_t(k) + min_j (V_{t-1}(j) + penalty * [j != k]),   L_t(k) = ||z_t - c_k||^2 / 2,

depends on candles <= t only, and the state at t is argmin_k V_t(k). The
backward pass of the fit (which looks at later rows) never touches a read-out.

Because the best penalty differs by market and period, :class:`RegimeJump` fits
one model per penalty of a grid and lets them vote: ``p_bull`` is the share of
models whose state at t is their bullish one, and the decision is ``bull`` when
at least half of them agree. One penalty is a grid of one.

Input ``X``: (T, D) regime features, column 0 a return measure (it names the
states: higher mean in training is ``bull``), e.g. the slow-clock features
``%-ewm_return_5d_1d, ...``. Standardised with training statistics and clipped
at ``clip`` standard deviations. Rows with a NaN feature get NaN probabilities
before the first complete row and carry the previous read-out forward after it.

The model runs on the clock of its features: a row equal to the one before it
(daily features repeated on every hourly candle of the day) is not a new
observation, so it is skipped when fitting and carries the read-out forward.
The penalty thus means the same on daily closes and on hourly candles that
carry daily features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.models.regime_base import RegimeModel, one_thread

FloatArray = NDArray[np.float64]
LABELS = ("bear", "bull")


def jump_losses(z: FloatArray, centres: FloatArray) -> FloatArray:
    """Half squared distances (T, K) of standardised rows ``z`` (T, D) to ``centres`` (K, D)."""
    losses: FloatArray = 0.5 * ((z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return losses


def value_step(previous: FloatArray, losses: FloatArray, penalty: float) -> FloatArray:
    """One step of the online recursion (see the module docstring), shifted so that its
    minimum is 0 (the argmin, the only thing read out, is unchanged; values stay small)."""
    k = len(losses)
    moves = previous[:, None] + penalty * (1.0 - np.eye(k))
    values: FloatArray = losses + moves.min(axis=0)
    shifted: FloatArray = values - values.min()
    return shifted


def new_observations(x: FloatArray) -> NDArray[np.bool_]:
    """True where a row differs from the row before it (the first row is new)."""
    changed = np.ones(len(x), dtype=bool)
    if len(x) > 1:
        changed[1:] = (x[1:] != x[:-1]).any(axis=1)
    return changed


def best_path(losses: FloatArray, penalty: float) -> tuple[NDArray[np.int64], float]:
    """The state sequence minimising total loss plus penalties (fitting only: the
    backward pass uses later rows) and its objective value."""
    n, k = losses.shape
    jumps = penalty * (1.0 - np.eye(k))
    values = np.empty((n, k))
    values[0] = losses[0]
    for t in range(1, n):
        values[t] = losses[t] + (values[t - 1][:, None] + jumps).min(axis=0)
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(values[-1].argmin())
    for t in range(n - 1, 0, -1):
        path[t - 1] = int((values[t - 1] + jumps[:, path[t]]).argmin())
    return path, float(values[-1].min())


def fit_centres(
    z: FloatArray, k: int, penalty: float, n_init: int, max_iter: int, seed: int
) -> tuple[FloatArray, NDArray[np.int64]]:
    """Coordinate descent from ``n_init`` k-means++ starts; the lowest objective wins."""
    rng = np.random.default_rng(seed)
    best: tuple[float, FloatArray, NDArray[np.int64]] | None = None
    for _ in range(n_init):
        centres = [z[rng.integers(len(z))]]
        for _ in range(1, k):
            distance = np.min([((z - c) ** 2).sum(axis=1) for c in centres], axis=0)
            total = distance.sum()
            pick = rng.choice(len(z), p=distance / total) if total > 0 else rng.integers(len(z))
            centres.append(z[pick])
        current = np.array(centres, dtype="float64")
        path, objective = best_path(jump_losses(z, current), penalty)
        for _ in range(max_iter):
            for state in range(k):
                if (path == state).any():
                    current[state] = z[path == state].mean(axis=0)
            new_path, objective = best_path(jump_losses(z, current), penalty)
            if (new_path == path).all():
                break
            path = new_path
        if best is None or objective < best[0]:
            best = (objective, current.copy(), path.copy())
    assert best is not None
    return best[1], best[2]


class RegimeJump(RegimeModel):
    """Two-state (bear/bull) jump-model regimes, voted over a grid of jump penalties.

    Parameters
    ----------
    jump_penalties: the grid; one model per penalty, in units of the standardised
        squared distance (0: plain k-means, no persistence).
    n_init: k-means++ starts per model; the lowest objective wins.
    max_iter: coordinate-descent rounds per start.
    clip: standardised features are clipped at +-``clip``.
    """

    def __init__(
        self,
        jump_penalties: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0),
        n_init: int = 10,
        max_iter: int = 50,
        clip: float = 3.0,
        random_state: int = 0,
    ) -> None:
        self.jump_penalties = jump_penalties
        self.n_init = n_init
        self.max_iter = max_iter
        self.clip = clip
        self.random_state = random_state

    def _standardise(self, x: FloatArray) -> FloatArray:
        z: FloatArray = np.clip((x - self.mean_) / self.scale_, -self.clip, self.clip)
        return z

    @one_thread
    def fit(self, X: FloatArray, y: object = None) -> RegimeJump:
        x = np.asarray(X, dtype="float64")
        if x.ndim != 2:
            raise ValueError(f"X must be 2-D (candles, features), got shape {x.shape}")
        if not self.jump_penalties or min(self.jump_penalties) < 0:
            raise ValueError(f"jump_penalties must be >= 0, got {self.jump_penalties}")
        x = x[np.isfinite(x).all(axis=1)]
        x = x[new_observations(x)]
        if len(x) < 50:
            raise ValueError(f"need at least 50 complete rows to fit a regime model, got {len(x)}")
        self.mean_ = x.mean(axis=0)
        self.scale_ = x.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        z = self._standardise(x)
        centres, bull_states, return_means = [], [], []
        for index, penalty in enumerate(self.jump_penalties):
            fitted, path = fit_centres(
                z, 2, float(penalty), self.n_init, self.max_iter, self.random_state + index
            )
            means = [
                float(x[path == s, 0].mean()) if (path == s).any() else -np.inf for s in range(2)
            ]
            centres.append(fitted)
            bull_states.append(int(np.argmax(means)))
            return_means.append(means)
        self.centres_ = np.array(centres)  # (M, 2, D), standardised units
        self.bull_states_ = np.array(bull_states, dtype=np.int64)  # (M,)
        self.state_return_means_ = np.array(return_means)  # (M, 2), column 0 units
        self.n_states_ = 2
        self.n_features_in_ = x.shape[1]
        self.labels_ = list(LABELS)
        return self

    # -- causal read-out -------------------------------------------------------------

    @one_thread
    def filter(self, X: FloatArray) -> tuple[FloatArray, NDArray[np.int64]]:
        """Probabilities (T, 2) ``[p_bear, p_bull]`` (the share of the grid's models in
        each state) and the decision (T,) (1 = bull when p_bull >= 0.5; -1 before the
        first complete row), one pass of :class:`OnlineJumpFilter`."""
        x = np.asarray(X, dtype="float64")
        probabilities = np.full((len(x), 2), np.nan)
        decisions = np.full(len(x), -1, dtype=np.int64)
        state = OnlineJumpFilter(self)
        for t in range(len(x)):
            probabilities[t] = state.update(x[t])
            decisions[t] = state.decision
        return probabilities, decisions

    def fingerprint_parts(self) -> tuple[Any, ...]:
        return (
            "jump",
            self.centres_,
            self.mean_,
            self.scale_,
            self.bull_states_,
            tuple(self.jump_penalties),
            float(self.clip),
        )

    def fold_report(self, X: FloatArray, rows: NDArray[np.int64]) -> dict[str, float]:
        """What each penalty of the grid decided on ``rows``: the share of them it called
        bull, and its switches, so that every fold records each penalty's part in the vote."""
        votes = self.votes(X)[rows]
        out: dict[str, float] = {}
        for index, penalty in enumerate(self.jump_penalties):
            column = votes[:, index]
            known = column[column >= 0]
            name = f"regime.penalty_{penalty:g}"
            out[f"{name}.bull_share"] = float(known.mean()) if len(known) else float("nan")
            out[f"{name}.switches"] = float((np.diff(known) != 0).sum()) if len(known) else 0.0
        return out

    def votes(self, X: FloatArray) -> NDArray[np.int64]:
        """Per row and penalty of the grid (T, M): 1 where that model is in its bullish
        state, 0 bearish, -1 before the first complete row. Causal, as :meth:`filter`."""
        x = np.asarray(X, dtype="float64")
        out = np.full((len(x), len(self.jump_penalties)), -1, dtype=np.int64)
        state = OnlineJumpFilter(self)
        for t in range(len(x)):
            state.update(x[t])
            if state.states is not None:
                out[t] = (state.states == self.bull_states_).astype(np.int64)
        return out

    def online(self) -> OnlineJumpFilter:
        """A stateful read-out that takes one candle at a time (the live path)."""
        return OnlineJumpFilter(self)


class OnlineJumpFilter:
    """The online recursion of every model of the grid, one candle at a time.

    Gives exactly the batch :meth:`RegimeJump.filter` values for the same rows
    (the batch read-out is this loop)."""

    def __init__(self, model: RegimeJump) -> None:
        self.model = model
        self.values: FloatArray | None = None  # (M, 2)
        self.last_row: FloatArray | None = None
        self.states: NDArray[np.int64] | None = None  # (M,) each model's state after the last row
        self.probabilities = np.full(2, np.nan)
        self.decision = -1

    def update(self, x: FloatArray) -> FloatArray:
        """Probabilities ``[p_bear, p_bull]`` after one more row of regime features (D,)."""
        row = np.asarray(x, dtype="float64").reshape(1, -1)
        if row.shape[1] != self.model.n_features_in_:
            raise ValueError(f"expected {self.model.n_features_in_} features, got {row.shape[1]}")
        if not np.isfinite(row).all():
            return self.probabilities.copy()  # no observation: the read-out stands
        if self.last_row is not None and (row[0] == self.last_row).all():
            return self.probabilities.copy()  # the same observation again: no step
        self.last_row = row[0].copy()
        z = self.model._standardise(row)
        losses = np.stack([jump_losses(z, c)[0] for c in self.model.centres_])  # (M, 2)
        if self.values is None:
            self.values = losses - losses.min(axis=1, keepdims=True)
        else:
            self.values = np.stack(
                [
                    value_step(self.values[m], losses[m], float(penalty))
                    for m, penalty in enumerate(self.model.jump_penalties)
                ]
            )
        states = self.values.argmin(axis=1)
        self.states = states
        bull = float((states == self.model.bull_states_).mean())
        self.probabilities = np.array([1.0 - bull, bull])
        self.decision = 1 if bull >= 0.5 else 0
        return self.probabilities.copy()
