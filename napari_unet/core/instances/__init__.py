"""Objects and what to paint next: instances from labels (joined across blocks), uncertainty, metrics."""
