"""What every layer shares: the layout of a user dir (``common.layout``)."""
