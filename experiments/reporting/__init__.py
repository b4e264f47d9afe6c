"""Reporting: what the user dir's MLflow store and journal say, for a person to read.

:mod:`.report` and :mod:`.journal` (``tradingbot report``: Markdown and one HTML page),
:mod:`.ui` and :mod:`.ui_readonly` (``tradingbot ui``: MLflow's own UI, read-only).
"""
