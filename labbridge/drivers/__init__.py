"""Controller drivers: one per controller kind, each keeping one :class:`~labbridge.model.MachineState` current.

``base`` (the driver interface and its capability protocols), ``factory``, ``grbl`` (with ``grbl_settings``),
``fanuc``, ``sources/`` (Modbus and OPC UA status sources of Fanuc-style machines), ``field_map``.

May import: ``labbridge.protocols``, ``labbridge.transports``, ``model``, ``config``, ``modbus_profiles``,
``errors``, ``log``.
Never the server, the streaming layer or the simulators.
"""
