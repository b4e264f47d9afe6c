"""Volatility: the risk target, and the classical forecasts a model of it must beat.

Units everywhere: the **log of annualised volatility**, ``log(sqrt(P * mean(r**2)))``,
of 1-candle log returns ``r`` (``P`` candles a year). Realised volatility is measured
around zero, as it is in the literature (the mean return over a few candles is noise);
``downside`` uses ``min(r, 0)`` instead of ``r``: the volatility of the falls.

* :func:`forward_log_volatility`: the target at candle t, from returns t+1..t+h (it
  uses the future by design: the last ``h`` rows are NaN, and training embargoes them).
* The baselines, each causal (its value at t uses returns up to t only) and each a
  forecast of that same quantity:

  - :func:`trailing_log_volatility`: the realised volatility of the last ``h`` candles;
  - :func:`ewma_log_volatility`: RiskMetrics (J.P. Morgan, 1996), lambda 0.94 per day,
    i.e. the same half-life in days on any timeframe;
  - :func:`har_log_volatility`: HAR-RV (Corsi, 2009) in logs, the target regressed on
    the realised volatility of the last 1, 7 and 30 days, refitted every 30 days on the
    rows whose targets were known by then, with the log-normal correction to the mean.

* Losses: :func:`qlike` (Patton, 2011: robust to noise in the realised measure, and
  what a forecast of variance is judged by) and the squared error of log volatility.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

RISKMETRICS_DAILY_LAMBDA = 0.94
HAR_DAYS = (1, 7, 30)  # Corsi's daily, weekly and monthly components, in crypto's 7-day week
HAR_REFIT_DAYS = 30
# a floor on the mean squared return (per candle) so that a window of unchanged closes
# has a finite log volatility: a return std of 1e-5 per candle, far below any market's
MIN_VARIANCE = 1e-10


def periods_per_year_of(dates: pd.Series) -> float:
    """Candles a year (of 365 days) at the median spacing of ``dates``."""
    stamps = pd.to_datetime(dates, utc=True)
    spacing = float(np.median(np.diff(stamps.to_numpy(dtype="datetime64[ns]")).astype("float64")))
    if not np.isfinite(spacing) or spacing <= 0:
        raise ValueError("need at least two candles, in time order, to know their spacing")
    return 365.0 * 86_400e9 / spacing


def one_candle_returns(close: pd.Series | FloatArray) -> FloatArray:
    """``r[t] = log(close[t] / close[t-1])``; ``r[0]`` is NaN. Shape (n,)."""
    values = np.log(np.asarray(close, dtype="float64"))
    returns: FloatArray = np.r_[np.nan, np.diff(values)]
    return returns


def _squares(close: pd.Series | FloatArray, downside: bool) -> FloatArray:
    r = one_candle_returns(close)
    return np.square(np.minimum(r, 0.0) if downside else r)


def _log_vol(mean_square: FloatArray, periods_per_year: float) -> FloatArray:
    return 0.5 * np.log(periods_per_year * np.maximum(mean_square, MIN_VARIANCE))


def forward_log_volatility(
    close: pd.Series | FloatArray, horizon: int, periods_per_year: float, downside: bool = False
) -> FloatArray:
    """Log annualised realised volatility of returns t+1..t+horizon, at each t. Shape
    (n,); NaN for the last ``horizon`` rows. Uses the future by design (a target)."""
    squares = _squares(close, downside)
    n = len(squares)
    out = np.full(n, np.nan)
    if n <= horizon:
        return out
    cumulative = np.r_[0.0, np.cumsum(np.nan_to_num(squares, nan=0.0))]
    # mean of squares[t+1 .. t+h] = (C[t+h+1] - C[t+1]) / h
    t = np.arange(n - horizon)
    out[: n - horizon] = _log_vol(
        (cumulative[t + horizon + 1] - cumulative[t + 1]) / horizon, periods_per_year
    )
    return out


def trailing_log_volatility(
    close: pd.Series | FloatArray, window: int, periods_per_year: float, downside: bool = False
) -> FloatArray:
    """Log annualised realised volatility of returns t-window+1..t. Causal; NaN until
    ``window`` returns exist. Shape (n,)."""
    squares = pd.Series(_squares(close, downside))
    mean_square = squares.rolling(window, min_periods=window).mean().to_numpy(dtype="float64")
    return np.where(np.isfinite(mean_square), _log_vol(mean_square, periods_per_year), np.nan)


def ewma_log_volatility(
    close: pd.Series | FloatArray,
    periods_per_year: float,
    candles_per_day: float,
    downside: bool = False,
    daily_lambda: float = RISKMETRICS_DAILY_LAMBDA,
) -> FloatArray:
    """RiskMetrics: ``v[t] = lam * v[t-1] + (1 - lam) * r[t]**2``, with ``lam`` the daily
    lambda taken per candle (``lam_day ** (1 / candles_per_day)``: the same half-life
    in days, about 11, on every timeframe). Causal; NaN for the first candle. Shape (n,)."""
    squares = _squares(close, downside)
    lam = daily_lambda ** (1.0 / candles_per_day)
    variance = (
        pd.Series(squares[1:]).ewm(alpha=1.0 - lam, adjust=False).mean().to_numpy(dtype="float64")
    )
    forecast: FloatArray = np.r_[np.nan, _log_vol(variance, periods_per_year)]
    return forecast


def har_components(
    close: pd.Series | FloatArray,
    periods_per_year: float,
    candles_per_day: float,
    downside: bool = False,
) -> FloatArray:
    """The HAR regressors at each candle: trailing log volatility over the last 1, 7 and
    30 days (at least one candle each). Causal. Shape (n, 3)."""
    return np.column_stack(
        [
            trailing_log_volatility(
                close, max(1, round(days * candles_per_day)), periods_per_year, downside
            )
            for days in HAR_DAYS
        ]
    )


def har_log_volatility(
    close: pd.Series | FloatArray,
    horizon: int,
    periods_per_year: float,
    candles_per_day: float,
    downside: bool = False,
) -> FloatArray:
    """HAR-RV forecasts of :func:`forward_log_volatility`: at every refit (each
    :data:`HAR_REFIT_DAYS` days), ordinary least squares of the target on
    :func:`har_components` and a constant, over the rows whose target was known at that
    candle (t + horizon <= the refit candle); the coefficients forecast until the next
    refit, plus :func:`lognormal_correction` of the fit's residuals (from the median a log
    regression forecasts to the mean variance QLIKE judges). Causal. NaN until 60 days of fitted
    rows exist. Shape (n,)."""
    components = har_components(close, periods_per_year, candles_per_day, downside)
    target = forward_log_volatility(close, horizon, periods_per_year, downside)
    n = len(target)
    out = np.full(n, np.nan)
    step = max(1, round(HAR_REFIT_DAYS * candles_per_day))
    minimum = max(10, round(60 * candles_per_day))
    design = np.column_stack([np.ones(n), components])
    usable: NDArray[np.bool_] = np.asarray(np.isfinite(design).all(axis=1))
    for refit in range(0, n, step):
        known = refit - horizon + 1  # rows t with t + horizon <= refit
        rows = np.flatnonzero(usable[:known] & np.isfinite(target[:known]))
        if len(rows) < minimum:
            continue
        coefficients, *_ = np.linalg.lstsq(design[rows], target[rows], rcond=None)
        # a regression in logs forecasts the median, QLIKE judges the mean variance
        # (in-sample residuals: four coefficients barely overfit)
        correction = lognormal_correction(target[rows] - design[rows] @ coefficients)
        block = slice(refit, min(n, refit + step))
        out[block] = np.where(usable[block], design[block] @ coefficients + correction, np.nan)
    return out


def lognormal_correction(residuals: FloatArray) -> float:
    """What to add to a forecast of log volatility to forecast the mean variance rather
    than the median: with log-normal errors of variance ``s2`` (log volatility), ``E[var]
    = exp(2 * (forecast + s2))``, so ``s2``, the variance of the residuals (NaN ignored).
    (Duan's non-parametric smearing was tried: one volatility spike in the residuals
    dominates it, and it over-corrected; see docs/MODELS.md.)"""
    e = np.asarray(residuals, dtype="float64")
    e = e[np.isfinite(e)]
    return float(np.var(e)) if len(e) else 0.0


def risk_baselines(
    close: pd.Series | FloatArray,
    horizon: int,
    periods_per_year: float,
    candles_per_day: float,
    downside: bool = False,
) -> dict[str, FloatArray]:
    """The three classical forecasts, each of shape (n,), for every candle."""
    return {
        "trailing": trailing_log_volatility(close, horizon, periods_per_year, downside),
        "ewma": ewma_log_volatility(close, periods_per_year, candles_per_day, downside),
        "har_rv": har_log_volatility(close, horizon, periods_per_year, candles_per_day, downside),
    }


def qlike(actual: FloatArray, forecast: FloatArray) -> float:
    """Mean QLIKE of variance forecasts, from log volatilities: with ``d = actual -
    forecast``, the variance ratio is ``exp(2d)`` and the loss ``exp(2d) - 2d - 1``
    (0 for a perfect forecast; under-forecasting risk costs more than over-forecasting)."""
    d = 2.0 * (np.asarray(actual, dtype="float64") - np.asarray(forecast, dtype="float64"))
    return float(np.mean(np.expm1(d) - d))


def risk_metrics(actual: FloatArray, forecast: FloatArray) -> dict[str, float]:
    """QLIKE and the mean squared error of log volatility over the rows given (the
    caller picks rows where every forecast compared is finite)."""
    y, f = np.asarray(actual, dtype="float64"), np.asarray(forecast, dtype="float64")
    if not len(y):
        return {"qlike": float("nan"), "mse_log_vol": float("nan"), "rows": 0.0}
    return {
        "qlike": qlike(y, f),
        "mse_log_vol": float(np.mean(np.square(y - f))),
        "rows": float(len(y)),
    }
