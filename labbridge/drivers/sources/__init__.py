"""Status sources of a Fanuc-style machine: its PLC over Modbus, its OPC UA server; each fills MachineState fields.
"""
