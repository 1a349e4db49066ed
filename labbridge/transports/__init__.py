"""Thin I/O around the protocol cores: a pyserial link read by one thread, handed to asyncio.

May import: ``labbridge.protocols``, ``labbridge.config``, ``labbridge.errors``, ``labbridge.log``.
Never the server, the streaming layer or the simulators.
"""
