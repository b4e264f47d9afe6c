"""What a run's metrics say: which evaluation it carries (training's walk-forward,
tuning's test window or its validation folds), a metric under either of its names, and
the few lines a model version's description gives, beside buy and hold and SMA50."""

from __future__ import annotations

import math
from dataclasses import dataclass

# (metric prefix, short label, description) of the evaluations a run may carry, in order of
# preference: training's walk-forward, tuning's held-out test window, its validation folds.
EVALUATIONS = (
    ("overall.", "walk-forward", "walk-forward out of sample"),
    ("test.", "tune test", "held-out test window"),
    ("validation.", "tune valid.", "validation folds"),
)
# where each evaluation records its baselines (buy and hold, HAR-RV, ...) on its own candles
BASELINE_PREFIXES = {
    "overall.": "baseline.",
    "test.": "test.baseline.",
    "validation.": "validation.baseline.",
}
# what the promotion gate compares, in order: Calmar over 90 days or more, else the
# window's own return over max drawdown (ml.metrics: annualised figures need 90 days)
GATE_MEASURES = (("calmar", "Calmar"), ("return_over_drawdown", "return over max drawdown"))
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


@dataclass(frozen=True)
class Gate:
    """The promotion gate's verdict on a run's evaluation against its baseline."""

    passed: bool
    reason: str
    forced: bool = False  # passed only because a user said so (--force, with a reason)

    @property
    def verdict(self) -> str:
        """``passed: ...``, ``refused: ...`` or ``forced past: ...``: what the tag records."""
        label = "forced past" if self.forced else "passed" if self.passed else "refused"
        return f"{label}: {self.reason}"


def promotion_gate(metrics: dict[str, float]) -> Gate:
    """Does the run's evaluation (see :data:`EVALUATIONS`) do at least as well as its
    baseline on the same candles? A traded model against buy and hold: by Calmar where
    the window allows it, else by the window's return over max drawdown. A volatility
    forecast is not traded: against HAR-RV, by QLIKE. A run without an evaluation, or
    without the baseline beside it, does not pass: there is nothing to judge it by."""
    evaluation = evaluation_of(metrics)
    if evaluation is None:
        return Gate(False, "its run recorded no out-of-sample evaluation")
    prefix, _, description = evaluation
    baselines = BASELINE_PREFIXES[prefix]
    own_loss, har_loss = metrics.get(f"{prefix}qlike"), metrics.get(f"{baselines}har_rv.qlike")
    if own_loss is not None and har_loss is not None:  # a forecast of risk: not traded
        verdict = "not above" if own_loss <= har_loss else "above"
        return Gate(
            own_loss <= har_loss,
            f"{description}: QLIKE {own_loss:.4f}, {verdict} HAR-RV's {har_loss:.4f}",
        )
    for key, name in GATE_MEASURES:
        own = metrics.get(f"{prefix}{key}")
        hold = metrics.get(f"{baselines}always_long.{key}")
        if own is None or hold is None or not (math.isfinite(own) and math.isfinite(hold)):
            continue
        verdict = "not below" if own >= hold else "below"
        return Gate(
            own >= hold, f"{description}: {name} {own:.2f}, {verdict} buy and hold's {hold:.2f}"
        )
    return Gate(False, f"{description}: no figure to compare with buy and hold")
