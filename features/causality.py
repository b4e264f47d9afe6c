"""The causality contract, as a reusable check.

A pipeline is causal when the value at candle t depends only on candles <= t.
Then building on any prefix ``candles[:n]`` gives exactly the rows ``[:n]`` of
the build on the full data. :func:`assert_prefix_invariant` checks that on
random prefixes, on every shared row and column, bit for bit (NaN equals NaN).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd


class CausalityViolation(AssertionError):
    """A value changed when later candles were added: the pipeline looks ahead."""


def prefix_lengths(total: int, count: int, *, seed: int = 0, minimum: int = 1) -> list[int]:
    """``count`` distinct random prefix lengths in ``[minimum, total - 1]``, ascending."""
    rng = np.random.default_rng(seed)
    upper = total - 1
    if upper < minimum:
        raise ValueError(f"need more than {minimum} candles to test prefixes, got {total}")
    size = min(count, upper - minimum + 1)
    return sorted(
        int(n) for n in rng.choice(np.arange(minimum, upper + 1), size=size, replace=False)
    )


def assert_prefix_invariant(
    build: Callable[[pd.DataFrame], pd.DataFrame],
    candles: pd.DataFrame,
    *,
    prefixes: int | Iterable[int] = 6,
    seed: int = 0,
    minimum: int = 1,
    atol: float = 0.0,
) -> list[int]:
    """Raise :class:`CausalityViolation` unless ``build`` is prefix invariant on ``candles``.

    ``prefixes`` is a number of random prefix lengths or the lengths themselves.
    Compared: every column except ``date`` that ``build`` returns, row by row,
    exactly unless ``atol`` is given (for float32 network outputs, whose last
    bits depend on the batch size a BLAS kernel was handed, not on the future).
    Returns the prefix lengths tested.
    """
    full = build(candles).reset_index(drop=True)
    lengths = (
        prefix_lengths(len(candles), prefixes, seed=seed, minimum=minimum)
        if isinstance(prefixes, int)
        else sorted(prefixes)
    )
    for n in lengths:
        part = build(candles.iloc[:n].reset_index(drop=True)).reset_index(drop=True)
        if len(part) != n:
            raise CausalityViolation(f"build on {n} candles returned {len(part)} rows")
        if list(part.columns) != list(full.columns):
            raise CausalityViolation(f"build on {n} candles returned other columns")
        for column in full.columns:
            if column == "date":
                continue
            expected = full[column].to_numpy()[:n]
            actual = part[column].to_numpy()
            close = expected == actual if atol == 0 else np.abs(expected - actual) <= atol
            same = close | (np.isnan(expected) & np.isnan(actual))
            if not same.all():
                row = int(np.flatnonzero(~same)[0])
                raise CausalityViolation(
                    f"column {column!r} at row {row} ({candles['date'].iloc[row]}) is "
                    f"{actual[row]!r} on the first {n} candles but {expected[row]!r} on all "
                    f"{len(candles)}: it depends on candles after row {row}"
                )
    return lengths
