"""The one table of GRBL 1.1 error codes, alarm codes and `$` settings.

Meanings follow GRBL's own code list, worded for the person at the machine.
firmware-notes/grbl-1.1.md documents the same table; the driver, the job runner
and the dashboard all look meanings up here so they never disagree.
"""

from __future__ import annotations


def N_(message: str) -> str:
    """Marks a meaning for the gettext catalogs (this sans-IO room imports nothing); readers see it translated."""
    return message


ERRORS: dict[int, str] = {
    1: N_("expected command letter: a G-code word has a value but no letter"),
    2: N_("bad number format: a word's value is missing or not a valid number"),
    3: N_("invalid statement: the '$' system command is not recognised"),
    4: N_("negative value: a value that must be positive was negative"),
    5: N_("homing is not enabled in the settings ($22)"),
    6: N_("step pulse time must be at least 3 microseconds ($0)"),
    7: N_("EEPROM read failed: the affected settings were reset to defaults"),
    8: N_("not idle: this '$' command is only allowed when the machine is Idle"),
    9: N_("G-code locked: the machine is in alarm or jog state (unlock or home first)"),
    10: N_("soft limits need homing enabled ($22=1 before $20=1)"),
    11: N_("line overflow: the line is longer than GRBL's line buffer and was not executed"),
    12: N_("step rate too high: the setting would exceed the maximum step rate"),
    13: N_("safety door open: the door state was entered"),
    14: N_("line too long to store: build info or startup line exceeds the EEPROM limit"),
    15: N_("travel exceeded: the jog target is outside the machine's travel; jog ignored"),
    16: N_("invalid jog command: no '=' or a G-code not allowed in a jog"),
    17: N_("laser mode needs a PWM spindle output"),
    20: N_("unsupported command: the block contains a G-code GRBL does not support"),
    21: N_("modal group violation: two commands of the same modal group in one block"),
    22: N_("undefined feed rate: no F word active for a feed move"),
    23: N_("integer required: this command needs an integer value"),
    24: N_("two commands in the block both need the axis words"),
    25: N_("a word is repeated in the block"),
    26: N_("no axis words: the command or the active motion mode needs axis words"),
    27: N_("invalid line number"),
    28: N_("missing value word: the command needs a value word (e.g. P for G4)"),
    29: N_("G59.x work coordinate systems are not supported"),
    30: N_("G53 is only allowed with G0 or G1"),
    31: N_("axis words present but nothing in the block or the modal state uses them"),
    32: N_("G2/G3 arcs need at least one axis word in the selected plane"),
    33: N_("invalid motion target (e.g. an arc that cannot be computed)"),
    34: N_("invalid arc radius"),
    35: N_("G2/G3 arcs need at least one offset word (I, J, K) in the selected plane"),
    36: N_("unused value words in the block"),
    37: N_("G43.1 tool length offset is not on the configured tool length axis"),
    38: N_("tool number larger than the maximum supported"),
}

ALARMS: dict[int, str] = {
    1: N_("hard limit triggered: position is likely lost after the sudden stop; re-home"),
    2: N_("soft limit: a motion target was outside the machine travel; position kept, reset then unlock"),
    3: N_("reset while moving: position is likely lost after the sudden stop; re-home"),
    4: N_("probe fail: the probe was not in the expected state before the probe cycle"),
    5: N_("probe fail: the probe did not make contact within the programmed travel"),
    6: N_("homing fail: the homing cycle was reset"),
    7: N_("homing fail: the safety door was opened during homing"),
    8: N_("homing fail: pull-off did not clear the limit switch (check $27 or wiring)"),
    9: N_("homing fail: limit switch not found within the search distance (check $130-$132, $27, wiring)"),
}

SETTINGS: dict[int, tuple[str, str]] = {
    0: ("step pulse time", "microseconds"),
    1: ("step idle delay", "milliseconds"),
    2: ("step pulse invert", "mask"),
    3: ("step direction invert", "mask"),
    4: ("invert step enable pin", "boolean"),
    5: ("invert limit pins", "boolean"),
    6: ("invert probe pin", "boolean"),
    10: ("status report options", "mask"),
    11: ("junction deviation", "mm"),
    12: ("arc tolerance", "mm"),
    13: ("report in inches", "boolean"),
    20: ("soft limits enable", "boolean"),
    21: ("hard limits enable", "boolean"),
    22: ("homing cycle enable", "boolean"),
    23: ("homing direction invert", "mask"),
    24: ("homing locate feed rate", "mm/min"),
    25: ("homing search seek rate", "mm/min"),
    26: ("homing switch debounce delay", "milliseconds"),
    27: ("homing switch pull-off distance", "mm"),
    30: ("maximum spindle speed", "RPM"),
    31: ("minimum spindle speed", "RPM"),
    32: ("laser mode enable", "boolean"),
    100: ("X steps per mm", "step/mm"),
    101: ("Y steps per mm", "step/mm"),
    102: ("Z steps per mm", "step/mm"),
    110: ("X maximum rate", "mm/min"),
    111: ("Y maximum rate", "mm/min"),
    112: ("Z maximum rate", "mm/min"),
    120: ("X acceleration", "mm/s^2"),
    121: ("Y acceleration", "mm/s^2"),
    122: ("Z acceleration", "mm/s^2"),
    130: ("X maximum travel", "mm"),
    131: ("Y maximum travel", "mm"),
    132: ("Z maximum travel", "mm"),
}


def error_message(code: int) -> str:
    """Meaning of ``error:code`` (never fails: unknown codes say so)."""
    return ERRORS.get(code, f"unknown GRBL error code {code}")


def alarm_message(code: int) -> str:
    """Meaning of ``ALARM:code`` (never fails: unknown codes say so)."""
    return ALARMS.get(code, f"unknown GRBL alarm code {code}")
