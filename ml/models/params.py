"""Declared ranges of forecaster parameters, checked when a spec is read.

An estimator class lists ``param_ranges``; ``ModelConfig`` checks a spec's values
against them before anything is trained or recorded, so ``n_estimators = 0`` is a
one-line error naming the key, not a FAILED run and a traceback from inside a fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """Allowed values: ``low <= value <= high`` (``<`` where the bound is open)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not allowed, or None."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{value!r} is not a number"
        if self.integer and not isinstance(value, int):
            return f"{value!r} is not a whole number"
        if not math.isfinite(value):
            return f"{value!r} is not finite"
        too_low = self.low is not None and (
            value <= self.low if self.low_open else value < self.low
        )
        too_high = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        return f"{value!r} is outside {self.describe()}" if too_low or too_high else None

    def describe(self) -> str:
        left = "-inf" if self.low is None else f"{self.low:g}"
        right = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.low_open or self.low is None else '['}{left}, {right}{')' if self.high_open or self.high is None else ']'}"


def count(low: int = 1, high: int | None = None) -> Range:
    return Range(low=low, high=high, integer=True)


def fraction(*, low_open: bool = True, high_open: bool = False) -> Range:
    """A share in (0, 1] by default."""
    return Range(0.0, 1.0, low_open=low_open, high_open=high_open)


POSITIVE = Range(low=0.0, low_open=True)
