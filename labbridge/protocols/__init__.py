"""Sans-IO protocol cores: bytes (and time, where a protocol has timeouts) in, events and bytes out.

GRBL 1.1 line protocol and its character-counting stream window (``grbl``, ``grbl_codes``,
``grbl_stream``), Fanuc-style DNC tape framing (``dnc``), Modbus register encoding (``modbus_registers``).
Tested by feeding bytes whole, one at a time and at random splits, as h11 is.

May import: the standard library only (no asyncio, serial, threading or clock, no files); a caller passes time
where a protocol has timeouts.
"""
