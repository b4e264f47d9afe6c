"""LiveState's growing columns: appends and drops keep exactly the values a copy would."""

from __future__ import annotations

import numpy as np

from ml.serving.live import _Growing


def test_growing_column_equals_the_concatenations_it_replaces() -> None:
    rng = np.random.default_rng(3)
    expected = rng.normal(size=50)
    column = _Growing(expected)
    handed_out = []
    for _ in range(400):
        dropped, added = int(rng.integers(0, 4)), rng.normal(size=int(rng.integers(0, 5)))
        expected = np.concatenate([expected[dropped:], added])
        column.shift(dropped, added)
        assert np.array_equal(column.values, expected)
        handed_out.append((column.values, expected.copy()))
    # a view handed out earlier never changes afterwards (it may sit in a returned frame)
    assert all(np.array_equal(view, values) for view, values in handed_out)


def test_object_and_integer_columns_keep_their_dtype() -> None:
    reasons = _Growing(np.array(["a", "b"], dtype=object))
    reasons.shift(1, np.array(["c"] * 40, dtype=object))
    assert reasons.values.dtype == object and list(reasons.values[:2]) == ["b", "c"]
    codes = _Growing(np.array([0, 1], dtype="int16"))
    codes.shift(0, np.array([2], dtype="int16"))
    assert codes.values.dtype == np.int16 and list(codes.values) == [0, 1, 2]
