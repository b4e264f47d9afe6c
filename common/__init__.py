"""What every layer shares: the user-dir layout, the errors, atomic writes."""
