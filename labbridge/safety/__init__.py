"""The safety gate: interpret G-code per controller dialect and check it against a machine.

Every program passes :func:`check_program` for its machine before a byte of it is
streamed. Layers: lexer → modal interpreter (words, modes, nonmodal, moves, arcs,
cycles, policy) → canonical motions → checks (geometry: the one arc kernel) and
run-time estimate (planner: GRBL's own, shared with the simulator) → report.
Imports only labbridge.config, labbridge.errors and itself.
"""

from labbridge.safety.diagnostics import CODES, Diagnostic
from labbridge.safety.interpreter import BlockResult, Interpreter, Modal
from labbridge.safety.motion import Motion
from labbridge.safety.program import ProgramChecker, Report, check_program, check_stream, check_text

__all__ = [
    "CODES", "BlockResult", "Diagnostic", "Interpreter", "Modal", "Motion", "ProgramChecker", "Report",
    "check_program", "check_stream", "check_text",
]
