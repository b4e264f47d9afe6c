"""What a run's metrics say: which evaluation it carries (training's walk-forward,
tuning's test window or its validation folds), a metric under either of its names, and
the few lines a model version's description gives, beside buy and hold and SMA50."""

from __future__ import annotations

# (metric prefix, short label, description) of the evaluations a run may carry, in order of
# preference: training's walk-forward, tuning's held-out test window, its validation folds.
EVALUATIONS = (
    ("overall.", "walk-forward", "walk-forward out of sample"),
    ("test.", "tune test", "held-out test window"),
    ("validation.", "tune valid.", "validation folds"),
)
# the total return, as training names it and as tuning's strategy replay names it
RETURN_KEYS = ("total_return", "profit_total")
SUMMARY_BASELINES = (("always_long", "buy and hold"), ("sma50_daily", "SMA50 daily"))


def evaluation_of(metrics: dict[str, float]) -> tuple[str, str, str] | None:
    """The first of :data:`EVALUATIONS` a run's metrics hold, or None."""
    for evaluation in EVALUATIONS:
        if any(key.startswith(evaluation[0]) for key in metrics):
            return evaluation
    return None


def metric(metrics: dict[str, float], prefix: str, key: str) -> float | None:
    """``metrics[prefix + key]``; the total return under either of its names."""
    for name in RETURN_KEYS if key == "total_return" else (key,):
        if f"{prefix}{name}" in metrics:
            return metrics[f"{prefix}{name}"]
    return None


def _figures(metrics: dict[str, float], prefix: str) -> str:
    parts = []
    for key, label, percent in (
        ("total_return", "return", True),
        ("max_drawdown", "max drawdown", True),
        ("calmar", "Calmar", False),
        ("sharpe", "Sharpe", False),
    ):
        value = metric(metrics, prefix, key)
        if value is not None:
            parts.append(f"{label} {value:.1%}" if percent else f"{label} {value:.2f}")
    return ", ".join(parts)


def run_summary(metrics: dict[str, float]) -> str:
    """A few lines for a model version's description: the run's evaluation beside buy
    and hold and the SMA50 rule on the same candles (empty when the run logged none)."""
    evaluation = evaluation_of(metrics)
    own = _figures(metrics, evaluation[0]) if evaluation else ""
    if evaluation is None or not own:
        return ""
    lines = [f"{evaluation[2].capitalize()}: {own}."]
    for baseline, name in SUMMARY_BASELINES:
        figures = _figures(metrics, f"baseline.{baseline}.")
        if figures:
            lines.append(f"{name[0].upper()}{name[1:]} on the same candles: {figures}.")
    return "\n".join(lines)
