"""The simulated GRBL's `$` settings and EEPROM contents: defaults, formatting, validation.

Factory values are GRBL 1.1h's stock defaults (as a fresh `$RST=$` lists them);
``from_machine`` instead matches a configured machine, the way a technician would
have set the real controller up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labbridge.config import WORK_OFFSET_CODES, Machine

Vec = tuple[float, float, float]

FACTORY: dict[int, float] = {
    0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: 1, 11: 0.010, 12: 0.002, 13: 0,
    20: 0, 21: 0, 22: 0, 23: 0, 24: 25.0, 25: 500.0, 26: 250, 27: 1.0, 30: 1000, 31: 0, 32: 0,
    100: 250.0, 101: 250.0, 102: 250.0, 110: 500.0, 111: 500.0, 112: 500.0,
    120: 10.0, 121: 10.0, 122: 10.0, 130: 200.0, 131: 200.0, 132: 200.0,
}
#: Settings GRBL prints without decimals (uint8 values, and the rpm limits with 0 decimals).
INTEGER = frozenset({0, 1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 30, 31, 32})
BOOLEAN = frozenset({4, 5, 6, 13, 20, 21, 22, 32})
#: Bytes the AVR rewrites for each kind of EEPROM write (settings struct, one coord set, a line).
EEPROM_BYTES = {"settings": 80, "coord": 13, "line": 81}
#: ATmega328p EEPROM erase+write time per byte (datasheet: 3.3-3.4 ms).
EEPROM_MS_PER_BYTE = 3.4


def print_float(value: float, decimals: int) -> str:
    """nuts_bolts.c printFloat: scale, add 0.5 and truncate (halves round up, unlike Python's format)."""
    sign = "-" if value < 0 else ""
    scaled = int(abs(value) * 10 ** decimals + 0.5)
    digits = str(scaled).rjust(decimals + 1, "0")
    return sign + (digits[:-decimals] + "." + digits[-decimals:] if decimals else digits)


def format_setting(number: int, value: float) -> str:
    """report.c report_grbl_settings: uint8 settings as integers, $30/$31 with 0 decimals, the rest with 3."""
    if number in INTEGER:
        return f"${number}={print_float(value, 0)}"
    return f"${number}={print_float(value, 3)}"


@dataclass
class Eeprom:
    """What survives a reset or power cycle: settings, work offsets, G28/G30, startup lines, build info."""

    settings: dict[int, float] = field(default_factory=lambda: dict(FACTORY))
    offsets: dict[str, Vec] = field(default_factory=lambda: {c: (0.0, 0.0, 0.0) for c in WORK_OFFSET_CODES})
    g28: Vec = (0.0, 0.0, 0.0)
    g30: Vec = (0.0, 0.0, 0.0)
    startup: list[str] = field(default_factory=lambda: ["", ""])
    build_info: str = ""

    @classmethod
    def from_machine(cls, machine: Machine) -> Eeprom:
        """Settings and offsets matching the machine's config (travel, rates, spindle, homing, offsets)."""
        eeprom = cls()
        s = eeprom.settings
        for i, axis in enumerate("XYZ"):
            if axis in machine.envelope:
                low, high = machine.envelope[axis]
                s[130 + i] = float(high - low)
            s[110 + i] = machine.rapid(axis)
            s[120 + i] = machine.accel(axis)
            s[100 + i] = machine.steps(axis)
        s[11] = machine.junction_deviation
        s[12] = machine.arc_tolerance
        s[30] = float(machine.spindle.max_rpm)
        s[31] = float(getattr(machine.spindle, "min_rpm", 0) or 0)
        s[22] = 1 if machine.homing_required else 0
        s[20] = s[22]
        s[10] = 1
        eeprom.offsets.update({c: machine.offset(c) for c in WORK_OFFSET_CODES if c in machine.work_offsets})
        home = machine.home_position()
        eeprom.g28 = tuple(float(machine.g28_position.get(a, home[i])) for i, a in enumerate("XYZ"))  # type: ignore[assignment]
        eeprom.g30 = tuple(float(machine.g30_position.get(a, home[i])) for i, a in enumerate("XYZ"))  # type: ignore[assignment]
        return eeprom

    def store(self, number: int, value: float) -> int:
        """Validate and store ``$number=value``; returns GRBL's status code (0 = ok)."""
        if value < 0:  # settings_store_global_setting checks the sign before the number
            return 4
        if number not in FACTORY:
            return 3
        s = self.settings
        if number in INTEGER and number not in (30, 31):
            value = float(int(value) % 256)  # settings.c: uint8_t int_value = trunc(value), even for $26 and flags
        if number == 0 and value < 3:
            return 6
        if number == 20 and value and not s[22]:
            return 10
        if number in BOOLEAN:
            value = 1.0 if value else 0.0
        if number == 22 and not value:
            s[20] = 0.0  # GRBL clears soft limits when homing is disabled
        s[number] = value
        return 0

    def restore(self, what: str) -> None:
        """``$RST=$`` settings, ``$RST=#`` offsets, ``$RST=*`` everything."""
        if what in ("$", "*"):
            self.settings = dict(FACTORY)
        if what in ("#", "*"):
            self.offsets = {c: (0.0, 0.0, 0.0) for c in WORK_OFFSET_CODES}
            self.g28 = self.g30 = (0.0, 0.0, 0.0)
        if what == "*":
            self.startup = ["", ""]
            self.build_info = ""

    # convenient views
    def max_rates(self) -> Vec:
        return (self.settings[110], self.settings[111], self.settings[112])

    def accels(self) -> Vec:
        # $120-$122 are mm/s²
        return (self.settings[120], self.settings[121], self.settings[122])

    def max_travel(self) -> Vec:
        return (self.settings[130], self.settings[131], self.settings[132])

    def steps(self) -> Vec:
        return (self.settings[100], self.settings[101], self.settings[102])
