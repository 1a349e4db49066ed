"""What each controller dialect accepts: G-codes with their modal groups, M-codes, word letters.

G-codes are keyed by ``round(value * 10)`` so that G38.2 is 382 and G1 is 10. Codes a
dialect knows but labbridge does not simulate are listed with the reason, so they are
rejected by name ("G71 stock removal cycle is not simulated"), never silently skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labbridge.i18n import N_

# Modal groups (names follow NIST RS274/NGC table 4; "nonmodal" is group 0).
MOTION, NONMODAL, PLANE, DISTANCE, ARC_DISTANCE, FEED_MODE, UNITS, CUTTER, TLO, WCS, CONTROL, RETRACT, CSS = (
    "motion", "non-modal", "plane", "distance", "arc-distance", "feed-mode", "units", "cutter-comp",
    "tool-length", "work-offset", "path-control", "canned-return", "spindle-mode",
)
M_STOP, M_SPINDLE, M_COOLANT, M_TOOL, M_OTHER = "stop", "spindle", "coolant", "tool-change", "other"

_COMMON_G: dict[int, str] = {
    0: MOTION, 10: MOTION, 20: MOTION, 30: MOTION, 800: MOTION,
    40: NONMODAL, 100: NONMODAL, 280: NONMODAL, 300: NONMODAL, 530: NONMODAL,
    200: UNITS, 210: UNITS, 400: CUTTER, 490: TLO,
    540: WCS, 550: WCS, 560: WCS, 570: WCS, 580: WCS, 590: WCS,
    900: DISTANCE, 910: DISTANCE, 940: FEED_MODE,
}

GRBL_G: dict[int, str] = {
    **_COMMON_G,
    382: MOTION, 383: MOTION, 384: MOTION, 385: MOTION,
    281: NONMODAL, 301: NONMODAL, 920: NONMODAL, 921: NONMODAL,
    170: PLANE, 180: PLANE, 190: PLANE, 911: ARC_DISTANCE, 930: FEED_MODE, 431: TLO, 610: CONTROL,
}

_FANUC_CYCLES = {730: MOTION, 810: MOTION, 820: MOTION, 830: MOTION, 840: MOTION, 850: MOTION, 860: MOTION, 890: MOTION}

FANUC_MILL_G: dict[int, str] = {
    **_COMMON_G, **_FANUC_CYCLES,
    170: PLANE, 180: PLANE, 190: PLANE, 281: NONMODAL, 301: NONMODAL, 920: NONMODAL, 500: NONMODAL,
    930: FEED_MODE, 950: FEED_MODE, 430: TLO, 610: CONTROL, 640: CONTROL,
    960: CSS, 970: CSS, 980: RETRACT, 990: RETRACT,
}

# G-code system B on a lathe: G90/G91 distance, G94/G95 feed modes, G98/G99 canned-cycle return.
FANUC_LATHE_B_G: dict[int, str] = {
    **_COMMON_G, **_FANUC_CYCLES,
    180: PLANE, 920: NONMODAL, 500: NONMODAL, 950: FEED_MODE,
    960: CSS, 970: CSS, 980: RETRACT, 990: RETRACT,
}
# G-code system A (most Fanuc lathes): no G90/G91 (U and W are the incremental words), G98/G99 are feed per
# minute / per revolution, and G90/G92/G94 are single turning, threading and facing cycles.
FANUC_LATHE_A_G: dict[int, str] = {
    0: MOTION, 10: MOTION, 20: MOTION, 30: MOTION, 800: MOTION, 830: MOTION, 840: MOTION, 850: MOTION,
    40: NONMODAL, 100: NONMODAL, 280: NONMODAL, 300: NONMODAL, 530: NONMODAL, 500: NONMODAL,
    180: PLANE, 200: UNITS, 210: UNITS, 400: CUTTER,
    540: WCS, 550: WCS, 560: WCS, 570: WCS, 580: WCS, 590: WCS,
    980: FEED_MODE, 990: FEED_MODE, 960: CSS, 970: CSS,
}
FEED_MODE_ALIAS_A = {980: 940, 990: 950}

# Known but not simulated: rejected by name with a hint.
_NOT_SIMULATED_COMMON: dict[int, str] = {
    410: N_("G41 cutter radius compensation is not simulated: program the tool centre path, or check the program "
            "with G40"),
    420: N_("G42 cutter radius compensation is not simulated: program the tool centre path, or check the program "
            "with G40"),
    50: N_("G5 splines are not supported on this controller"),
    51: N_("G5.1 splines are not supported on this controller"),
    70: N_("G7 lathe diameter mode is not supported on this controller"),
    80: N_("G8 lathe radius mode is not supported on this controller"),
    330: N_("G33 spindle-synchronised motion is not simulated"),
    640: N_("G64 path blending is not supported by GRBL 1.1 (it always runs exact path, G61)"),
    641: N_("G64 P path blending is not supported by GRBL 1.1"),
    611: N_("G61.1 exact stop mode is not supported by GRBL 1.1"),
    430: N_("G43 H (tool table offsets) is not supported by GRBL 1.1: use G43.1 Z<length>"),
    950: N_("G95 feed per revolution is not supported by GRBL 1.1: use G94 with F in mm/min"),
    960: N_("G96 constant surface speed is not supported by GRBL 1.1"),
    970: N_("G97 is not supported by GRBL 1.1 (spindle speed is always in rpm)"),
    901: N_("G90.1 absolute arc centres are not supported: GRBL only knows G91.1 (incremental I J K)"),
    990: N_("G99 canned-cycle return is not supported by GRBL 1.1"),
    980: N_("G98 canned-cycle return is not supported by GRBL 1.1"),
    591: N_("G59.1 to G59.3 work offsets are not supported: use G54 to G59"),
    592: N_("G59.1 to G59.3 work offsets are not supported: use G54 to G59"),
    593: N_("G59.1 to G59.3 work offsets are not supported: use G54 to G59"),
}

GRBL_NOT_SIMULATED: dict[int, str] = {
    **_NOT_SIMULATED_COMMON,
    **{c: N_("{gcode} canned cycles are not supported by GRBL 1.1: write the moves out as G0/G1") for c in
       (730, 740, 760, 810, 820, 830, 840, 850, 860, 870, 880, 890)},
}

FANUC_NOT_SIMULATED: dict[int, str] = {
    410: _NOT_SIMULATED_COMMON[410], 420: _NOT_SIMULATED_COMMON[420],
    330: N_("G33 threading is not simulated by labbridge"),
    320: N_("G32 thread cutting is not simulated by labbridge"),
    340: N_("G34 variable-lead threading is not simulated by labbridge"),
    740: N_("G74 is not simulated by labbridge (lathe: peck cycle, mill: left-hand tapping)"),
    760: N_("G76 is not simulated by labbridge (lathe: threading cycle, mill: fine boring)"),
    870: N_("G87 back boring is not simulated by labbridge"),
    880: N_("G88 boring with manual retract is not simulated by labbridge"),
    650: N_("G65 macro calls are not simulated by labbridge"),
    660: N_("G66 modal macro calls are not simulated by labbridge"),
    680: N_("G68 coordinate rotation is not simulated by labbridge"),
    510: N_("G51 scaling is not simulated by labbridge"),
    150: N_("G15/G16 polar coordinates are not simulated by labbridge"),
    160: N_("G15/G16 polar coordinates are not simulated by labbridge"),
    100: "",  # placeholder removed below (G10 is simulated)
}
del FANUC_NOT_SIMULATED[100]
FANUC_LATHE_NOT_SIMULATED: dict[int, str] = {
    **FANUC_NOT_SIMULATED,
    700: N_("G70 finishing cycle is not simulated by labbridge: write the finishing pass as G1/G2/G3 moves"),
    710: N_("G71 stock removal (turning) cycle is not simulated by labbridge: write the roughing passes as G1 moves"),
    720: N_("G72 stock removal (facing) cycle is not simulated by labbridge: write the passes as G1 moves"),
    730: N_("G73 pattern repeating cycle is not simulated by labbridge: write the passes as G1 moves"),
    750: N_("G75 grooving cycle is not simulated by labbridge: write the plunges as G1 moves"),
    770: N_("G77 single turning cycle is not simulated by labbridge"),
    780: N_("G78 single threading cycle is not simulated by labbridge"),
    790: N_("G79 single facing cycle is not simulated by labbridge"),
    170: N_("G17 is not available on a 2-axis lathe (it works in the ZX plane, G18)"),
    190: N_("G19 is not available on a 2-axis lathe (it works in the ZX plane, G18)"),
}
FANUC_LATHE_A_NOT_SIMULATED: dict[int, str] = {
    **FANUC_LATHE_NOT_SIMULATED,
    900: N_("G90 is the single turning cycle on this lathe (G-code system A) and is not simulated by labbridge: "
         "write the passes as G0/G1 moves (X and Z are absolute, U and W incremental)"),
    910: N_("G91 does not exist on this lathe (G-code system A): use U and W for incremental moves"),
    920: N_("G92 is the single threading cycle on this lathe (G-code system A) and is not simulated by labbridge"),
    940: N_("G94 is the single facing cycle on this lathe (G-code system A) and is not simulated by labbridge: "
         "use G98 for feed per minute"),
    950: N_("G95 does not exist on this lathe (G-code system A): G99 is feed per revolution, G98 per minute"),
    810: N_("G81 does not exist on this lathe (G-code system A): use G83 (face drilling) or G85 (face boring)"),
    820: N_("G82 does not exist on this lathe (G-code system A): use G83 with P for a dwell"),
    860: N_("G86 does not exist on this lathe (G-code system A)"),
    870: N_("G87 side drilling needs live tooling, which this lathe does not have"),
    880: N_("G88 side tapping needs live tooling, which this lathe does not have"),
    890: N_("G89 side boring needs live tooling, which this lathe does not have"),
}
FANUC_MILL_NOT_SIMULATED: dict[int, str] = dict(FANUC_NOT_SIMULATED)

GRBL_M: dict[int, str] = {0: M_STOP, 1: M_STOP, 2: M_STOP, 30: M_STOP, 3: M_SPINDLE, 4: M_SPINDLE, 5: M_SPINDLE,
                          8: M_COOLANT, 9: M_COOLANT}
FANUC_M: dict[int, str] = {**GRBL_M, 6: M_TOOL, 7: M_COOLANT, 19: M_OTHER}
GRBL_M_NOT_SIMULATED = {
    6: N_("M6 tool change is not supported by GRBL 1.1: stop with M0, change the tool by hand, then resume"),
    7: N_("M7 mist coolant is not enabled in this GRBL build: use M8 (flood)"),
    98: N_("M98 subprogram calls are not supported by GRBL 1.1"),
    99: N_("M99 is not supported by GRBL 1.1"),
    48: N_("M48/M49 override switches are not supported by GRBL 1.1"),
    49: N_("M48/M49 override switches are not supported by GRBL 1.1"),
}
FANUC_M_NOT_SIMULATED = {
    98: N_("M98 subprogram calls are not simulated by labbridge: put the subprogram's blocks in the main program"),
    99: N_("M99 subprogram return is not simulated by labbridge"),
}


@dataclass(frozen=True)
class Dialect:
    name: str
    g_codes: dict[int, str]
    g_not_simulated: dict[int, str]
    m_codes: dict[int, str]
    m_not_simulated: dict[int, str]
    letters: frozenset[str]
    unsupported_letters: dict[str, str] = field(default_factory=dict)
    fanuc: bool = False
    lathe: bool = False
    feed_mode_alias: dict[int, int] = field(default_factory=dict)  # G98/G99 on a system-A lathe


GRBL = Dialect(
    "grbl", GRBL_G, GRBL_NOT_SIMULATED, GRBL_M, GRBL_M_NOT_SIMULATED, frozenset("FIJKLNPRSTXYZ"),
    {"O": N_("O-words (program numbers and subroutines) are not supported by GRBL 1.1: remove this line"),
     "H": N_("H words are not supported by GRBL 1.1 (no tool table): use G43.1 Z<length>"),
     "Q": N_("Q words are not supported by GRBL 1.1 (no canned cycles)"),
     "D": N_("D words are not supported by GRBL 1.1 (no cutter compensation)"),
     "A": N_("GRBL 1.1 on this mill has no A axis"), "B": N_("GRBL 1.1 on this mill has no B axis"),
     "C": N_("GRBL 1.1 on this mill has no C axis"), "U": N_("U words are not supported by GRBL 1.1"),
     "V": N_("V words are not supported by GRBL 1.1"), "W": N_("W words are not supported by GRBL 1.1"),
     "E": N_("E words (3D-printer extrusion) are not G-code for a mill")},
)
FANUC_MILL = Dialect(
    "fanuc-mill", FANUC_MILL_G, FANUC_MILL_NOT_SIMULATED, FANUC_M, FANUC_M_NOT_SIMULATED,
    frozenset("DFHIJKLNOPQRSTXYZ"), {"A": N_("this mill has no A axis"), "B": N_("this mill has no B axis"),
                                     "C": N_("this mill has no C axis")}, fanuc=True,
)
_LATHE_LETTERS = frozenset("FIKLNOPQRSTUWXZ")
_LATHE_UNSUPPORTED = {"Y": N_("a 2-axis lathe has no Y axis"), "J": N_("a 2-axis lathe has no J (Y) arc offset"),
                      "C": N_("this lathe has no C axis")}
FANUC_LATHE = Dialect(
    "fanuc-lathe", FANUC_LATHE_A_G, FANUC_LATHE_A_NOT_SIMULATED, FANUC_M, FANUC_M_NOT_SIMULATED, _LATHE_LETTERS,
    _LATHE_UNSUPPORTED, fanuc=True, lathe=True, feed_mode_alias=FEED_MODE_ALIAS_A,
)
FANUC_LATHE_B = Dialect(
    "fanuc-lathe", FANUC_LATHE_B_G, FANUC_LATHE_NOT_SIMULATED, FANUC_M, FANUC_M_NOT_SIMULATED, _LATHE_LETTERS,
    _LATHE_UNSUPPORTED, fanuc=True, lathe=True,
)

DIALECTS = {d.name: d for d in (GRBL, FANUC_MILL, FANUC_LATHE)}


def dialect_for(controller: str, gcode_system: str = "A") -> Dialect:
    """The dialect of a controller; a Fanuc-style lathe speaks G-code system A unless configured as B."""
    if controller == "fanuc-lathe" and gcode_system == "B":
        return FANUC_LATHE_B
    return DIALECTS[controller]
