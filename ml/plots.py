"""Pictures for runs and reports (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from common.atomic import atomic_path

REGIME_COLOURS = {
    "bull": "#2ca02c",
    "bear": "#d62728",
    "sideways": "#7f7f7f",
    "crash": "#9467bd",
    "volatile": "#ff7f0e",
}


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def regime_plot(
    dates: pd.Series,
    close: pd.Series,
    regimes: pd.Series,
    path: Path,
    title: str,
    trades: pd.DataFrame | None = None,
) -> Path:
    """Close price (log scale) coloured by the regime decided at each candle; with
    ``trades`` (Freqtrade's columns ``open_date``, ``open_rate``, ``close_date``,
    ``close_rate``), entries as green and exits as red triangles."""
    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=110)
    x = pd.to_datetime(dates).dt.tz_convert(None).to_numpy()
    y = close.to_numpy(dtype="float64")
    labels = regimes.fillna("").astype(str).to_numpy()
    ax.plot(x, y, color="#cccccc", linewidth=0.6, zorder=1)
    for label in sorted({lab for lab in labels if lab}):
        mask = labels == label
        colour = REGIME_COLOURS.get(label.split("_")[0])
        ax.scatter(
            x[mask], y[mask], s=1.5, color=colour, label=f"{label} ({mask.mean():.0%})", zorder=2
        )
    if trades is not None and len(trades):
        for when, price, marker, colour, name in (
            ("open_date", "open_rate", "^", "#2ca02c", "entry"),
            ("close_date", "close_rate", "v", "#d62728", "exit"),
        ):
            stamps = pd.to_datetime(trades[when], utc=True).dt.tz_convert(None).to_numpy()
            ax.scatter(
                stamps,
                trades[price].to_numpy(dtype="float64"),
                marker=marker,
                s=28,
                color=colour,
                edgecolors="black",
                linewidths=0.4,
                label=f"{name} ({len(trades)})",
                zorder=3,
            )
    ax.set_yscale("log")
    _plain_log_labels(ax, "{:,g}")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("close (log scale)")
    ax.legend(loc="upper left", markerscale=1.5, frameon=False)
    ax.grid(alpha=0.2)
    return _save(fig, path)


def equity_figure(curves: dict[str, np.ndarray], dates: pd.Series, title: str) -> Figure:
    """Equity curves (start = 1) on a log axis."""
    fig, ax = plt.subplots(figsize=(12, 4), dpi=110)
    x = pd.to_datetime(dates).dt.tz_convert(None).to_numpy()
    for name, curve in curves.items():
        ax.plot(x, curve, label=name, linewidth=1.0)
    # A log axis shows equal percentage moves as equal heights, so a strategy's curve is
    # not squashed flat next to a market that rose 400%.
    ax.set_yscale("log")
    _plain_log_labels(ax, "{:g}x")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("equity (start = 1x, log scale)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.2)
    return fig


def _plain_log_labels(ax: Axes, form: str) -> None:
    """Label a log axis with plain numbers (``1.35x``, not ``1.35 x 10^0``): the 1-2-5
    steps of each decade, and finer steps where the axis spans less than a decade."""
    low, high = ax.get_ylim()
    span = high / max(low, 1e-12)
    plain = FuncFormatter(lambda value, _: form.format(float(f"{value:.3g}")))
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(plain)
    if span >= 10:
        ax.yaxis.set_minor_formatter(NullFormatter())
        return
    step = 0.1 if span < 2 else 0.5
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=tuple(np.arange(1.0, 10.0, step))))
    ax.yaxis.set_minor_formatter(plain)


def equity_plot(curves: dict[str, np.ndarray], dates: pd.Series, path: Path, title: str) -> Path:
    """:func:`equity_figure` written to ``path`` as PNG."""
    return _save(equity_figure(curves, dates, title), path)


def drawdown_figure(curves: dict[str, np.ndarray], dates: pd.Series, title: str) -> Figure:
    """Drawdown from the running peak of each equity curve, in percent: the first
    (the strategy) filled, the others (its baselines) as lines over it."""
    fig, ax = plt.subplots(figsize=(12, 3), dpi=110)
    x = pd.to_datetime(dates).dt.tz_convert(None).to_numpy()
    for index, (name, equity) in enumerate(curves.items()):
        values = np.asarray(equity, dtype="float64")
        drawdown = (values / np.maximum.accumulate(values) - 1.0) * 100.0
        label = f"{name} (max {-drawdown.min():.0f}%)"
        if index == 0:
            ax.fill_between(x, drawdown, 0.0, color="#d62728", alpha=0.4, linewidth=0, label=label)
        else:
            ax.plot(x, drawdown, linewidth=0.9, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("drawdown (%)")
    ax.legend(frameon=False, loc="lower left")
    ax.grid(alpha=0.2)
    return fig


def drawdown_plot(curves: dict[str, np.ndarray], dates: pd.Series, path: Path, title: str) -> Path:
    """:func:`drawdown_figure` written to ``path`` as PNG."""
    return _save(drawdown_figure(curves, dates, title), path)
