"""The rooms' import rules, read from the source with ``ast`` (imports inside functions count too).

- ``protocols/`` is sans-IO: no asyncio, serial, threading, time (the caller passes the clock), and
  nothing from the rooms that do I/O (transports, drivers, streaming, server, sim).
- Only ``sim/``, ``cli/`` (its ``sim`` and ``demo`` commands) and the tests import ``labbridge.sim``.
- ``drivers/``, ``transports/`` and ``streaming/`` never import the server.
- No import cycle between rooms (a room is a package below ``labbridge``, or a top-level module such
  as ``config``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "labbridge"

PROTOCOLS_NEVER = ("asyncio", "serial", "threading", "time", "labbridge.server", "labbridge.transports",
                   "labbridge.drivers", "labbridge.streaming", "labbridge.sim")
SIM_IMPORTERS = ("sim", "cli")
NEVER_THE_SERVER = ("drivers", "transports", "streaming")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (``from x import y`` also counts ``x.y``, which may be a module)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def room_of(module: str) -> str | None:
    """``labbridge.drivers.sources.modbus`` → ``drivers``; ``labbridge.config`` → ``config``; others None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "labbridge" else None


def sources() -> dict[str, set[str]]:
    return {_module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py")) if "node_modules" not in p.parts}


def _hits(imported: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_protocol_cores_do_no_io_and_know_no_upper_room() -> None:
    bad = {m: _hits(i, PROTOCOLS_NEVER) for m, i in sources().items() if room_of(m) == "protocols"}
    assert not {m: h for m, h in bad.items() if h}


def test_only_sim_and_cli_import_the_simulators() -> None:
    bad = {m: _hits(i, ("labbridge.sim",)) for m, i in sources().items() if room_of(m) not in SIM_IMPORTERS}
    assert not {m: h for m, h in bad.items() if h}


def test_drivers_transports_and_streaming_never_import_the_server() -> None:
    bad = {m: _hits(i, ("labbridge.server",)) for m, i in sources().items() if room_of(m) in NEVER_THE_SERVER}
    assert not {m: h for m, h in bad.items() if h}


BASE = {"model", "config", "errors", "log", "durable", "i18n", "__version__"}  # and the package version
#: What each room may import besides itself: the README's Layout section, as a rule.
MAY_IMPORT = {
    "model": BASE, "config": BASE, "errors": BASE, "log": BASE, "durable": BASE, "i18n": BASE,
    "safety": BASE,
    "protocols": set(),
    "transports": {"protocols"} | BASE,
    "drivers": {"protocols", "transports"} | BASE,
    "streaming": {"safety", "drivers", "protocols", "transports"} | BASE,
    "sim": {"safety", "drivers", "protocols"} | BASE,
    "server": {"safety", "streaming", "drivers", "protocols", "transports"} | BASE,
    "fleet": {"server", "streaming", "safety", "drivers", "protocols", "transports"} | BASE,
}


def test_each_room_imports_only_what_the_layout_allows() -> None:
    graph = room_graph(sources())
    beyond = {room: sorted(graph[room] - allowed) for room, allowed in MAY_IMPORT.items() if graph[room] - allowed}
    assert not beyond, f"imports beyond the README's Layout: {beyond}"


def room_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, imported in modules.items():
        here = room_of(module)
        for other in filter(None, map(room_of, imported)):
            if here is not None and other != here:
                graph[here].add(other)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path) per room that can reach itself again."""
    found: list[list[str]] = []
    for start in sorted(graph):
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append([*path, start])
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return found


def test_no_import_cycle_between_rooms() -> None:
    graph = room_graph(sources())
    assert {"drivers", "streaming", "server", "sim", "cli"} <= set(graph)  # the reader saw the rooms
    assert not cycles(graph), " ; ".join(" → ".join(c) for c in cycles(graph))


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
])
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    found = cycles(graph)
    assert (found[0] if found else None) == expected


def test_the_reader_sees_local_relative_and_from_imports() -> None:
    module = PACKAGE / "protocols" / "grbl.py"
    assert "labbridge.protocols.grbl_codes" in imports_of(module)
    runner = imports_of(PACKAGE / "server" / "lab.py")  # the job runner is imported inside a method
    assert "labbridge.streaming.runner" in runner
