"""Workers on other hosts over ssh (docs/hosts.md).

- :mod:`runner.hosts.layout`: where things live under a host's work root (both sides);
- :mod:`runner.hosts.agent`: ``swarm host serve``, the remote half (JSON lines over ssh);
- :mod:`runner.hosts.ssh`: OpenSSH with one shared connection per host (ControlMaster);
- :mod:`runner.hosts.link`: the mayor's end of one host's ``serve``, reconnecting;
- :mod:`runner.hosts.remote`: :class:`RemoteBackend` (a SessionBackend for one host), the
  relay (mail, results, escapes, logs and commits back; mail out) and :class:`HostsBackend`,
  which routes each session to its host;
- :mod:`runner.hosts.placement`: which host a task starts on (pure).
"""

from __future__ import annotations

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
