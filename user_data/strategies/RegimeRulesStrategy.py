"""The rule-based variant of RegimeStrategy: the reasoning model decides, its reason is the tag.

In its own file because Freqtrade reads a strategy's tuned parameters from the
``.json`` next to the strategy's file and refuses a file written for another class.
"""

from __future__ import annotations

from pandas import DataFrame
from RegimeStrategy import RegimeStrategy, _tags  # Freqtrade puts this directory on sys.path


class RegimeRulesStrategy(RegimeStrategy):
    """The rule-based variant: the reasoning model decides, and its reason is the tag."""

    default_model_uri = "models:/btc_1h_rules@champion"

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """Enter when the reasoning model says long."""
        entries = (dataframe["do_predict"] == 1) & (dataframe["&-prediction"] == 1)
        dataframe.loc[entries, "enter_long"] = 1
        dataframe.loc[entries, "enter_tag"] = _tags(dataframe[entries], "entry rules")
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        """Exit when the reasoning model says flat."""
        exits = (dataframe["do_predict"] == 1) & (dataframe["&-prediction"] == 0)
        dataframe.loc[exits, "exit_long"] = 1
        dataframe.loc[exits, "exit_tag"] = _tags(dataframe[exits], "exit rules")
        return dataframe
