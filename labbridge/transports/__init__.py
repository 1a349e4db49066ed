"""Thin I/O around the protocol cores: one pyserial link read by one thread, handed to asyncio.

``serial_link``: the link the GRBL driver and the DNC transfer both use (device paths and pyserial
URLs, exclusive open on POSIX, lost-link callback). Protocol knowledge stays in ``labbridge.protocols``
and in the drivers; nothing here knows GRBL or DNC.

May import: ``labbridge.protocols``, ``labbridge.config``, ``labbridge.errors``, ``labbridge.log``.
Never the server, the drivers, the streaming layer or the simulators.
"""
