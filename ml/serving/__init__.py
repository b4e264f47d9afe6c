"""The FreqAI-style adapter: registered models inside Freqtrade strategies.

* :mod:`~ml.serving.adapter`: :class:`ModelAdapter`, one model for one pair, in
  backtests (one causal batch) and live (only new candles), following its alias;
* :mod:`~ml.serving.pairs`: :class:`PairModels`, a whitelist served by one adapter
  per pair from a model URI with ``{pair}``;
* :mod:`~ml.serving.live`: the live path's per-pair state;
* :mod:`~ml.serving.guard`: what the adapter withheld and why (the lookahead guard);
* :mod:`~ml.serving.columns`: the columns both paths write;
* :mod:`~ml.serving.loading`: a served bundle loaded, a new version checked before use;
* :mod:`~ml.serving.served`: which registered models a backtest serves (one, one per
  pair, pooled), and a training run's walk-forward predictions stitched for it.
"""

from __future__ import annotations

from ml.serving.adapter import ModelAdapter
from ml.serving.columns import regime_codes, regime_column
from ml.serving.guard import GuardReport
from ml.serving.live import LiveState
from ml.serving.pairs import PAIR_PLACEHOLDER, PairModels, pair_uri

__all__ = [
    "PAIR_PLACEHOLDER",
    "GuardReport",
    "LiveState",
    "ModelAdapter",
    "PairModels",
    "pair_uri",
    "regime_codes",
    "regime_column",
]
