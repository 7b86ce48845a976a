"""Wire and file formats (pydantic v2): messages, plans, results, scope escapes, run events.

Imports nothing from ``agentmail`` or ``runner``. No ``logging`` import here either (see
``runner/__init__.py``: the fast send path of ``swarm worker`` stays without it).
"""
