"""runner/agents."""
