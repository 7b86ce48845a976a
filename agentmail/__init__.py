"""swarm-runner: agentmail layer (see docs/architecture.md).

No ``logging`` import here: ``swarm worker`` and ``swarm mail send`` run from a fresh process per
report, and importing logging (with traceback, tokenize, textwrap...) would be a third of what
such a command costs above the interpreter's start-up. The CLI configures logging for every
other command; a program that uses the library without configuring it gets Python's default
(warnings and errors on stderr, nothing below).
"""
