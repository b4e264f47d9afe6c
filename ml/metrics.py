"""Forecast metrics, the return measures every evaluation uses, and a vectorised
long/flat trading simulation after fees.

:func:`return_measures` is the one definition of Sharpe, max drawdown, CAGR and Calmar
from per-candle log returns: training's walk-forward scores, the tuning replay and
the marked-to-market backtest comparisons all call it.

Annualised measures (Sharpe, CAGR, Calmar) are NaN over a window shorter than
:data:`MIN_ANNUALISED_DAYS`: two weeks of a rising market compound to a CAGR of
+57,960%, which says nothing about a year. NaN is printed as ``-`` and never recorded.

Conventions: ``returns[t]`` is the 1-candle log return from close t-1 to close t;
a position decided at the close of candle t (from information <= t) earns
``returns[t+1]``. Fees are charged per side on every change of position.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from features.timeframes import timeframe_to_seconds

FloatArray = NDArray[np.float64]

# The shortest window whose Sharpe, CAGR and Calmar are reported: a quarter of a year.
# Below it the annual extrapolation of a few weeks is noise (a Sharpe ratio's standard
# error over T years is about 1/sqrt(T): 2 at 90 days, 4 at two weeks).
MIN_ANNUALISED_DAYS = 90.0


def periods_per_year(timeframe: str) -> float:
    """Candles of ``timeframe`` in a year of 365 days (crypto trades every day)."""
    return 365.0 * 86400.0 / timeframe_to_seconds(timeframe)


ANNUALISED = ("sharpe", "cagr", "calmar")


def not_annualised(values: dict[str, float]) -> dict[str, float]:
    """``values`` without the annualised measures: the figures of one walk-forward fold.
    A fold's test block is about a quarter, and a quarter extrapolated to a year made
    Calmars near 300 in a bull quarter; the annual figures of a run are those of its
    stitched out-of-sample window."""
    return {key: value for key, value in values.items() if key not in ANNUALISED}


def long_enough_to_annualise(days: float) -> bool:
    """Whether a window of ``days`` is long enough for Sharpe, CAGR and Calmar."""
    return days >= MIN_ANNUALISED_DAYS


def return_measures(log_returns: FloatArray, periods_per_year: float) -> dict[str, float]:
    """Measures of an equity curve that starts at 1 and moves by ``log_returns`` (one per
    candle): Sharpe (annualised, of the per-candle log returns), max drawdown (fraction of
    the peak, the start included), total log return, total return, CAGR, Calmar (CAGR
    over max drawdown; 0 without a drawdown) and the return over the max drawdown (not
    annualised: the window's own Calmar). Sharpe, CAGR and Calmar are NaN over fewer
    than :data:`MIN_ANNUALISED_DAYS` days."""
    net = np.asarray(log_returns, dtype="float64")
    equity = np.exp(np.cumsum(net))
    peak = np.maximum.accumulate(np.r_[1.0, equity])[1:]
    drawdown = float((1 - equity / peak).max()) if len(equity) else 0.0
    std = net.std() if len(net) else 0.0
    years = len(net) / periods_per_year
    total = float(net.sum())
    total_return = float(np.expm1(total))
    measures = {
        "sharpe": float(net.mean() / std * np.sqrt(periods_per_year)) if std > 0 else 0.0,
        "max_drawdown": drawdown,
        "total_log_return": total,
        "total_return": total_return,
        "return_over_drawdown": total_return / drawdown if drawdown > 0 else 0.0,
    }
    if not long_enough_to_annualise(years * 365.0):
        nan = float("nan")
        return measures | {"sharpe": nan, "cagr": nan, "calmar": nan}
    cagr = float(np.expm1(total / years))
    return measures | {"cagr": cagr, "calmar": cagr / drawdown if drawdown > 0 else 0.0}


def classification_metrics(y_true: FloatArray, p_up: FloatArray) -> dict[str, float]:
    """Directional accuracy, log-loss and Brier score on rows where both are finite."""
    ok = np.isfinite(y_true) & np.isfinite(p_up)
    y, p = y_true[ok], np.clip(p_up[ok], 1e-7, 1 - 1e-7)
    if not len(y):
        return {
            "accuracy": float("nan"),
            "log_loss": float("nan"),
            "brier": float("nan"),
            "rows": 0.0,
        }
    return {
        "accuracy": float(((p > 0.5) == (y > 0.5)).mean()),
        "log_loss": float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()),
        "brier": float(((p - y) ** 2).mean()),
        "rows": float(len(y)),
    }


def regression_metrics(y_true: FloatArray, y_pred: FloatArray) -> dict[str, float]:
    """RMSE, rank IC (Spearman) and directional accuracy on rows where both are finite."""
    ok = np.isfinite(y_true) & np.isfinite(y_pred)
    y, p = y_true[ok], y_pred[ok]
    if len(y) < 3:
        return {
            "rmse": float("nan"),
            "rank_ic": float("nan"),
            "accuracy": float("nan"),
            "rows": float(len(y)),
        }
    # imported here: scipy.stats takes 0.8 s, and the CLI's renderers import
    # this module for its constants
    from scipy.stats import spearmanr

    rank_ic = float(spearmanr(y, p).statistic) if np.ptp(p) > 0 else 0.0
    return {
        "rmse": float(np.sqrt(((y - p) ** 2).mean())),
        "rank_ic": rank_ic,
        "accuracy": float(((p > 0) == (y > 0)).mean()),
        "rows": float(len(y)),
    }


def _net_log_returns(
    positions: FloatArray, returns: FloatArray, fee: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    pos = np.clip(np.nan_to_num(np.asarray(positions, dtype="float64"), nan=0.0), 0.0, 1.0)
    nxt = np.nan_to_num(np.r_[np.asarray(returns, dtype="float64")[1:], 0.0], nan=0.0)
    changes = np.abs(np.diff(np.r_[0.0, pos]))
    # Held fully, a candle earns its log return; a share f of equity earns log(1 + f(e^r - 1)).
    gross = np.where(pos == 1.0, nxt, np.log1p(pos * np.expm1(nxt)))
    # A change of d costs log(1 - d * fee) of equity (d = 1: log(1 - fee)).
    net: FloatArray = gross + np.log1p(-changes * fee)
    return pos, changes, net


def equity_of(positions: FloatArray, returns: FloatArray, *, fee: float = 0.001) -> FloatArray:
    """Equity (starting at 1) at each candle's close of holding ``positions`` as
    :func:`long_flat` does: the position decided at close t earns candle t+1."""
    _, _, net = _net_log_returns(positions, returns, fee)
    equity: FloatArray = np.exp(np.r_[0.0, np.cumsum(net[:-1])]) if len(net) else net
    return equity


def long_flat(
    positions: FloatArray,
    returns: FloatArray,
    *,
    fee: float = 0.001,
    periods_per_year: float = 8760.0,
) -> dict[str, float]:
    """Simulate holding ``positions[t]`` (a share of equity in 0..1, NaN = flat) over
    candle t+1; a change of position by d pays ``fee * d`` of equity.

    Returns Sharpe (annualised, of per-candle net log returns), max drawdown
    (fraction of peak equity), turnover (mean position change per candle), exposure
    (mean position), total net log return, total return, CAGR and Calmar (CAGR over
    max drawdown; 0 without a drawdown), entries (``trades``), position changes and
    changes per year.
    """
    pos, changes, net = _net_log_returns(positions, returns, fee)
    if len(net) > 1:
        net = net[:-1]  # the last position has no next candle in the window
        changes = changes[:-1]
        pos = pos[:-1]
    measures = return_measures(net, periods_per_year)
    years = len(net) / periods_per_year
    moves = float((changes > 0).sum())
    return {
        **measures,
        "turnover": float(changes.mean()) if len(changes) else 0.0,
        "exposure": float(pos.mean()) if len(pos) else 0.0,
        "trades": float(((np.diff(np.r_[0.0, pos])) > 0).sum()),
        "position_changes": moves,
        "changes_per_year": moves / years if years > 0 else 0.0,
    }


def baseline_positions(returns: FloatArray) -> dict[str, FloatArray]:
    """Naive baselines: always long, and long after a positive last return."""
    r = np.asarray(returns, dtype="float64")
    return {
        "always_long": np.ones_like(r),
        "last_return_sign": (np.nan_to_num(r, nan=0.0) > 0).astype("float64"),
    }


def median_run_days(labels: NDArray[np.object_], stamps: NDArray[np.datetime64]) -> float:
    """Median length in days of the runs of one label (e.g. a regime decision; ``""``
    rows are skipped). A run lasts from its first candle to the end of its last one; the
    last run, cut by the end of the window, counts as it is. NaN without labels."""
    values = np.asarray(labels)
    valid = values != ""
    values, times = values[valid], np.asarray(stamps).astype("datetime64[ns]")[valid]
    if not len(values):
        return float("nan")
    starts = np.r_[0, np.flatnonzero(values[1:] != values[:-1]) + 1]
    ends = np.r_[starts[1:], len(values)]
    step = np.median(np.diff(times)) if len(times) > 1 else np.timedelta64(1, "D")
    lengths = (times[ends - 1] - times[starts] + step) / np.timedelta64(1, "D")
    return float(np.median(lengths))
