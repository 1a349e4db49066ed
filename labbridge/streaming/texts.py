"""The words of job records: outcome messages and notes, stored in English, read in any language.

A runner works for no particular reader, so it writes English (the log and the record stay
stable); the API, the websocket and the CLI show each reader :func:`localize`-d text
(see :func:`labbridge.i18n.localize`). Every template here is registered on import; build stored
texts only from these, with plain ``{name}`` fields (numbers formatted before).
"""

from __future__ import annotations

from typing import Any

from labbridge.i18n import N_, localize, phrase

__all__ = ["localize", "localize_record"]

# Where a job stood.
LINE = phrase(N_("line {line}"))
AFTER_LINE = phrase(N_("after line {line}"))
AFTER = phrase(N_("after {where}"))
PREAMBLE_LINE = phrase(N_("resume preamble line {line}"))
BEFORE_FIRST_ACK = N_("before the first line was acknowledged")
BEFORE_FIRST_BLOCK = N_("before the first block")
NONE = N_("none")
UNKNOWN = N_("unknown")
AN_EARLIER_LINE = N_("an earlier line")

# How a GRBL job ended.
SHUTDOWN = N_("the job runner was stopped (server shutdown)")
STOPPED_BY_LABBRIDGE = phrase(N_("labbridge stopped the job: {error}"))
NO_RESULT = N_("the job ended without a result")
ALL_ACKED = phrase(N_("all {lines} lines acknowledged ok"))
ALL_ACKED_CHECK = phrase(N_("all {lines} lines acknowledged ok in check mode"))
RESET_DURING = phrase(N_("the controller was reset during the job; {lost} buffered line(s) were discarded"))
CANCELLED = phrase(N_("cancelled {where}"))
CANCELLED_DETAIL = phrase(N_("cancelled {where} ({detail})"))
COULD_NOT_STOP = phrase(N_("could not stop cleanly: {error}"))
REJECTED = phrase(N_("{where} ({block}): the controller answered {words} — {meaning}; nothing after it was sent"))
REJECTED_DETAIL = phrase(N_("{where} ({block}): the controller answered {words} — {meaning}; nothing after it "
                            "was sent ({detail})"))
ALARMED = phrase(N_("the controller raised {words} — {meaning} ({after}); nothing more was sent"))
RESET_FAILED = phrase(N_("the controller was reset during the job ({lost} buffered line(s) discarded) after line "
                         "{line}"))
FAILED = N_("the job failed")
FAILED_DETAIL = phrase(N_("the job failed ({detail})"))
LAST_SEEN = phrase(N_("the machine was last seen on line {line}"))
PLANNER_UNSURE = N_("up to the planner's 15 blocks before it may not have run")
CONNECTION_LOST = phrase(N_("connection lost ({reason}); the last line acknowledged was {acked}; {seen}: check the "
                            "part and resume from {resume}"))

# Notes of stopping a GRBL job (joined by "; ").
NO_HOLD = phrase(N_("the machine did not report Hold:0 within {seconds} s"))
IN_ALARM = N_("the controller is in alarm; nothing was reset")
SOFT_RESET = N_("soft reset: the controller's buffers were discarded")
UNLOCKED = phrase(N_("unlocked after the reset's {alarm}: re-home before precise work"))
UNLOCKED_ALARM = N_("unlocked after the reset's alarm: re-home before precise work")
STOPPED_ON = phrase(N_("the machine stopped on line {line}"))
STOPPED_ON_NEVER_RAN = phrase(N_("the machine stopped on line {line}; lines {first} to {last} were acknowledged "
                                 "but never ran"))
STARVED = phrase(N_("no data for {seconds} s — check the surface there"))
STARVED_AT = phrase(N_("no data for {seconds} s at line {line} — check the surface there"))

# How a DNC tape ended.
TAPE_WAITING = N_("waiting for the control to read the tape (press cycle start in tape mode)")
TAPE_READ = phrase(N_("all {blocks} blocks read by the control in {seconds} s"))
TAPE_STOPPED = phrase(N_("tape stopped {where}; reset the control at its panel before the next job"))
TAPE_LOST = phrase(N_("connection lost ({reason}); the control read the tape up to {where}: check the part "
                      "before sending it again"))

# A job cut off by a stopped bridge (streaming.recovery).
BRIDGE_STOPPED = phrase(N_("the bridge stopped at {when} before the job ended (last sent {sent}, acknowledged "
                           "{acked}, executed {ran}); spindle and coolant may still be on; check the part and the "
                           "machine, then resume from line {resume}"))
BRIDGE_STOPPED_NO_RESUME = phrase(N_("the bridge stopped at {when} before the job ended (last sent {sent}, "
                                     "acknowledged {acked}, executed {ran}); spindle and coolant may still be on; "
                                     "check the part and the machine before running it again"))
AN_UNKNOWN_TIME = N_("an unknown time")

# Interlocks that refuse a start.
BUSY = phrase(N_("{machine} is busy with {job}; wait for it to end or cancel it"))
NOT_CONNECTED = phrase(N_("{machine} is not connected; check the cable and the power"))
NOT_CONNECTED_WHY = phrase(N_("{machine} is not connected ({reason}); check the cable and the power"))
IN_ALARM_START = phrase(N_("{machine} is in alarm: find the cause, then home ($H) or unlock ($X) before starting "
                           "a job"))
IN_ALARM_START_CODE = phrase(N_("{machine} is in alarm ({code}: {meaning}): find the cause, then home ($H) or unlock "
                                "($X) before starting a job"))
DOOR_OPEN = phrase(N_("{machine}: the safety door is open; close it before starting a job"))
NOT_HOMED = phrase(N_("{machine} has not been homed since it was powered up or reset; home it ($H) before "
                      "starting a job"))
NOT_IDLE = phrase(N_("{machine} is {state}, not Idle; wait until it stops (or finish the hold) before starting a job"))

# Why a program cannot resume from a line (streaming.resume).
RESUME_GRBL_ONLY = phrase(N_("resume from a line is available for GRBL mills only; {machine} is {controller}"))
RESUME_OUT_OF_RANGE = phrase(N_("cannot resume from line {line}: the program has lines 1 to {last}"))
RESUME_REJECTED = phrase(N_("line {line} is rejected by the safety gate ({reason}); fix the program first"))
REJECTED_WORD = N_("rejected")
RESUME_AFTER_END = phrase(N_("line {line} ends the program (M2/M30) before line {target}; resume from a line before "
                             "the program end"))
RESUME_IN_ARC = phrase(N_("line {line} continues an arc (G2/G3) begun on an earlier line; resume from the line that "
                          "has the G2 or G3 word"))
RESUME_IN_CYCLE = phrase(N_("line {line} is inside a probing or canned-cycle mode; resume from an earlier line"))

# Stopping the spindle and coolant after an interruption (streaming.recovery).
STOP_AT_PANEL = phrase(N_("{machine}: stop the spindle and coolant at the control's panel"))
STOP_MOVING = phrase(N_("{machine} is moving ({state}): hold it first, then stop the spindle"))
STOP_REFUSED = phrase(N_("{machine}: the controller refused M5 M9: {reason}"))
STOPPED_M5_M9 = N_("spindle and coolant stopped (M5 M9)")
STOPPED_BY_RESET = N_("spindle and coolant stopped (soft reset; the position is kept at rest)")

# The safety gate refuses a job at its start (runner, dnc_transfer).
GATE_LIVE = phrase(N_("{program} is rejected by the safety gate for {machine} with the controller's live offsets: "
                      "{count} error(s); first: {error}. Nothing was sent."))
GATE_TAPE = phrase(N_("{program} is rejected by the safety gate for {machine} ({count} error(s); first: {error}); "
                      "nothing was sent"))
NO_DETAILS = N_("no details")
SEE_CHECK = N_("see labbridge check")
NOTHING_TO_SEND = phrase(N_("{program}: nothing to send (only comments or blank lines)"))


def line_or(number: int | None, otherwise: str) -> str:
    """``line 12``, or ``otherwise`` (a marked word) when there is no line."""
    return LINE.format(line=number) if number else otherwise


def localize_record(record: dict[str, Any], lang: str | None = None) -> dict[str, Any]:
    """A job or queue record (or a websocket event) as the reader reads it: ``message`` and ``error_message``
    in ``lang`` (default: the current language), keys kept."""
    out = dict(record)
    for key in ("message", "error_message"):
        if isinstance(out.get(key), str):
            out[key] = localize(out[key], lang)
    return out


def localize_state(state: dict[str, Any], lang: str | None = None) -> dict[str, Any]:
    """A machine state's dict (or its changed fields) with the running job's ``message`` localized."""
    job = state.get("job")
    if not isinstance(job, dict) or not job.get("message"):
        return state
    return {**state, "job": localize_record(job, lang)}
