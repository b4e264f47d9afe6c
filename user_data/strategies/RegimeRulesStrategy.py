"""The rule-based variant of RegimeStrategy: the reasoning model decides, its reason is the tag.

In its own file because Freqtrade reads a strategy's tuned parameters from the
``.json`` next to the strategy's file and refuses a file written for another class.
The blocks are listed in ``compositions/RegimeRulesStrategy.toml``.
"""

from __future__ import annotations

from strategies.composed import ComposedStrategy, composition_beside


class RegimeRulesStrategy(ComposedStrategy):
    """The rule-based variant: the reasoning model decides, and its reason is the tag."""

    composition = composition_beside(__file__, "RegimeRulesStrategy")
