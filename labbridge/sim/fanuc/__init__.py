"""A simulated Fanuc-style control: tape reader on a pty (DNC), a Modbus PLC (lathe), an OPC UA server (mill).
"""
