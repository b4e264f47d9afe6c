"""Causal feature pipeline: candles in, feature frame out.

This package imports only `common` of Tradingbot's (the layout, errors, atomic writes).
"""

from features.candles import DataWindow, data_window
from features.feature_spec import FeatureSpec, default_spec, load_spec
from features.pipeline import build, feature_columns, first_valid_row

__all__ = [
    "DataWindow",
    "FeatureSpec",
    "build",
    "data_window",
    "default_spec",
    "feature_columns",
    "first_valid_row",
    "load_spec",
]
