"""The strategy domain around Freqtrade: risk, runner, results, reports."""
