"""calc: a tiny calculator package the demo swarm extends."""
