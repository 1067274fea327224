"""The alert centre: what is wrong now, what was wrong, and who was told."""
