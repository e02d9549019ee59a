"""The plan's figures, targets and the assumptions register, as validated data."""
