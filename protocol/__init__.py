"""Wire and file formats (pydantic v2): messages, plans, results, scope escapes, run events.

Imports nothing from ``agentmail`` or ``runner``.
"""

from __future__ import annotations

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
