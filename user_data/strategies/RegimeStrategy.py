"""Regime-aware strategy driven by a registered Tradingbot model, composed from blocks.

Entry: the model's probability of a rise above ``entry_threshold`` outside bearish
regimes, staked by the model's confidence times the regime's share. Exit: the
probability below ``exit_threshold`` or a bearish regime. The rules are the blocks
listed in ``compositions/RegimeStrategy.toml`` (see docs/STRATEGIES.md); the model
plumbing lives in the adapter and risk in the risk manager (``strategies.hooks``,
configured by the ``RISK_*`` environment variables). Configure the model in the
Freqtrade config:

    "tradingbot": {"model_uri": "models:/btc_1h_hmm_lstm@champion",
                   "tracking_uri": "sqlite:////path/to/user_data/mlflow.db"}
"""

from __future__ import annotations

from strategies.composed import ComposedStrategy, composition_beside


class RegimeStrategy(ComposedStrategy):
    """Long when the model expects a rise with confidence, outside bearish regimes."""

    composition = composition_beside(__file__, "RegimeStrategy")
