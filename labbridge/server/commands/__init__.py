"""Machine commands: the registry (:mod:`.registry`) and the lab's commands defined once (:mod:`.machine`).

Transports import ``COMMANDS`` and :func:`execute`; nothing else decides who may run a command or how it is
audited. May import the server's lab, auth and store; never the API routers.
"""

from labbridge.server.commands.machine import COMMANDS
from labbridge.server.commands import recovery as _recovery  # noqa: F401  (registers its commands)
from labbridge.server.commands.registry import (
    REST, WEBSOCKET, Call, Command, CommandFailed, NotFound, Registry, Rest, execute,
)

__all__ = ["COMMANDS", "REST", "WEBSOCKET", "Call", "Command", "CommandFailed", "NotFound", "Registry", "Rest",
           "execute"]
