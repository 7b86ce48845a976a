"""runner/cli."""
