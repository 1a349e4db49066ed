"""What the Modbus and OPC UA status sources share: their link state, reported once per change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LinkCallback = Callable[[str, bool, "str | None"], None]


class LinkState:
    """Mixin: ``up``/``fault`` plus a log line and a callback whenever either changes."""

    name = "source"
    up: bool
    fault: str | None
    on_link: LinkCallback | None
    log: Any

    def _set_link(self, up: bool, fault: str | None) -> None:
        changed = (up, fault) != (self.up, self.fault)
        self.up, self.fault = up, fault
        if changed:
            (self.log.info if up and fault is None else self.log.warning)(f"{self.name}_link", up=up, fault=fault)
            if self.on_link is not None:
                self.on_link(self.name, up, fault)
