"""``python -m experiments.cli``: the same as the ``tradingbot`` command."""

from experiments.cli.main import main

main()
