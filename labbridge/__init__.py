"""labbridge: machine-control bridge for the InfoMobil mobile CNC lab."""

__version__ = "0.1.0"
