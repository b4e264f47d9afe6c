"""``python -m tradingbot``: the same as the ``tradingbot`` command."""

from tradingbot.main import main

main()
