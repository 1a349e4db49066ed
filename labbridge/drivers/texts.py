"""The words of driver errors, stored and logged in English, read in the reader's language.

A driver raises for whoever called it (a job runner, a command, the CLI); the server and
the CLI show the text with :func:`labbridge.i18n.localize`, which knows these templates
once this module is imported (the GRBL driver imports it).
"""

from __future__ import annotations

from labbridge.i18n import N_, phrase

NOT_CONNECTED = phrase(N_("{machine}: not connected to GRBL on {port}"))
BUSY = phrase(N_("{machine} is busy with {job}; wait until it ends"))
BUSY_LINE = phrase(N_("{machine} is busy with {job}: '{line}' must wait until it ends"))
NO_PORT = phrase(N_("{machine}: no serial port configured (connection.serial.port or --port)"))
NO_STATUS = phrase(N_("{machine}: GRBL on {port} does not answer status requests"))
LINE_TOO_LONG = phrase(N_("{machine}: '{line}' is {length} characters after cleaning; GRBL accepts at most {limit}"))
NO_ANSWER = phrase(N_("{machine}: no answer from GRBL to '{line}' within {seconds} s"))
NOT_A_SETTING = phrase(N_("{machine}: ${number} is not a GRBL 1.1 setting"))
JOG_AXES = phrase(N_("{machine}: jog needs axis words among {axes}"))
JOG_FEED = phrase(N_("{machine}: jog feed must be above 0 mm/min"))
NO_RESTART = phrase(N_("{machine}: GRBL did not restart after a soft reset"))
