"""Small modules with one job: no module over 600 lines, no function over 120 lines.

Measured with ``ast`` (a function's length runs from its ``def`` to its last line,
nested functions included). ``python -m tests.test_sizes [N]`` lists the N longest
functions and every module over the limit, to plan a split by meaning.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "labbridge"
MODULE_LINES = 600
FUNCTION_LINES = 120
EXEMPT: tuple[str, ...] = ()  # every room is held to the same limits


@dataclass(frozen=True)
class Size:
    where: str  # path:line
    name: str
    lines: int


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "node_modules" not in p.parts)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def module_sizes(paths: list[Path]) -> list[Size]:
    out = []
    for path in paths:
        count = len(path.read_text(encoding="utf-8").splitlines())
        out.append(Size(_relative(path), _relative(path), count))
    return sorted(out, key=lambda s: -s.lines)


def function_sizes(paths: list[Path]) -> list[Size]:
    out = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        parents: dict[ast.AST, str] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                if isinstance(node, ast.ClassDef):
                    parents[child] = node.name
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                name = f"{parents[node]}.{node.name}" if node in parents else node.name
                out.append(Size(f"{_relative(path)}:{node.lineno}", name, node.end_lineno - node.lineno + 1))
    return sorted(out, key=lambda s: -s.lines)


def _held(paths: list[Path]) -> list[Path]:
    return [p for p in paths if not (EXEMPT and _relative(p).startswith(EXEMPT))]


def test_no_module_over_600_lines() -> None:
    over = [f"{s.where}: {s.lines} lines" for s in module_sizes(_held(modules())) if s.lines > MODULE_LINES]
    assert not over, f"split these modules by meaning (at most {MODULE_LINES} lines): " + "; ".join(over)


def test_no_function_over_120_lines() -> None:
    over = [f"{s.where} {s.name}: {s.lines} lines" for s in function_sizes(_held(modules()))
            if s.lines > FUNCTION_LINES]
    assert not over, f"split these functions by meaning (at most {FUNCTION_LINES} lines): " + "; ".join(over)


def test_the_measure_sees_long_functions_and_modules(tmp_path: Path) -> None:
    long_def = "def f():\n" + "    x = 1\n" * 130
    (tmp_path / "big.py").write_text("class K:\n    async def g(self):\n        pass\n\n" + long_def * 5)
    sizes = function_sizes([tmp_path / "big.py"])
    assert sizes[0].lines == 131 and sizes[-1].name == "K.g" and sizes[-1].lines == 2
    assert module_sizes([tmp_path / "big.py"])[0].lines == 4 + 5 * 131


if __name__ == "__main__":
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    paths = modules()
    print(f"modules over {MODULE_LINES} lines:")
    for s in module_sizes(paths):
        if s.lines > MODULE_LINES:
            print(f"  {s.lines:5d}  {s.where}")
    print(f"the {top} longest functions:")
    for s in function_sizes(paths)[:top]:
        print(f"  {s.lines:5d}  {s.name}  ({s.where})")
