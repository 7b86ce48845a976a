"""runner/plan."""
