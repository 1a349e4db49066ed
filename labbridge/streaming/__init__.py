"""Streaming programs to machines: the one job model and its records, the runners for GRBL and DNC,
interlocks and resume-from-line.

Shared by the CLI (``labbridge stream``) and the server (the dashboard's queue), as Moonraker keeps
its job queue and history apart from its HTTP app.

May import: ``labbridge.safety``, ``labbridge.drivers``, ``labbridge.protocols``, ``labbridge.transports``,
``model``, ``config``, ``errors``, ``log``. Never the server or the simulators.
"""
