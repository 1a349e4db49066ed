"""A simulated GRBL 1.1h controller on a pseudo-terminal, following ``grbl/*.c`` (protocol, settings, motion).
"""
