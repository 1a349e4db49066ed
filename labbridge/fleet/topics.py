"""Topic names and message shapes of the fleet link, shared by the lab and headquarters.

Everything a lab says lives under ``labbridge/v1/<lab>/`` (so that a broker ACL can let a lab write
only there); headquarters writes only ``machines/<id>/request`` topics. Payloads are JSON objects.
Whatever arrives from the broker is untrusted: size-limited, parsed as JSON (no NaN, no Infinity),
validated field by field, and never executed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PREFIX = "labbridge/v1"
ALL_LABS = f"{PREFIX}/+/#"
MAX_PAYLOAD = 1024 * 1024
"""Largest message either side accepts (a ``check`` request carries a whole program)."""
_LEVEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class PayloadError(ValueError):
    """A message from the broker that is not what the link expects; the text says what is wrong."""


def topic_safe(name: str) -> bool:
    """A lab, machine or client id that can be one MQTT topic level (no '/', '+', '#', no spaces)."""
    return bool(_LEVEL.fullmatch(name))


def lab_prefix(lab: str) -> str:
    return f"{PREFIX}/{lab}"


def status_topic(lab: str) -> str:
    return f"{PREFIX}/{lab}/status"


def state_topic(lab: str, machine: str) -> str:
    return f"{PREFIX}/{lab}/machines/{machine}/state"


def events_topic(lab: str) -> str:
    return f"{PREFIX}/{lab}/events"


def request_topic(lab: str, machine: str) -> str:
    return f"{PREFIX}/{lab}/machines/{machine}/request"


def requests_filter(lab: str) -> str:
    return f"{PREFIX}/{lab}/machines/+/request"


def reply_topic(lab: str, client: str) -> str:
    """Where a lab answers ``client``: under the lab's own prefix, which the lab may write."""
    return f"{PREFIX}/{lab}/replies/{client}"


@dataclass(frozen=True)
class Topic:
    kind: str  # status | state | events | request | reply
    lab: str
    machine: str | None = None
    client: str | None = None


def parse_topic(topic: str) -> Topic | None:
    """The meaning of a fleet topic, or None for anything else (ignored, never guessed at)."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != PREFIX or not topic_safe(parts[2]):
        return None
    lab, rest = parts[2], parts[3:]
    if rest == ["status"]:
        return Topic("status", lab)
    if rest == ["events"]:
        return Topic("events", lab)
    if len(rest) == 3 and rest[0] == "machines" and topic_safe(rest[1]) and rest[2] in ("state", "request"):
        return Topic(rest[2], lab, machine=rest[1])
    if len(rest) == 2 and rest[0] == "replies" and topic_safe(rest[1]):
        return Topic("reply", lab, client=rest[1])
    return None


def _no_constants(name: str) -> Any:
    raise PayloadError(f"{name} is not a JSON number")


def decode_object(payload: bytes | bytearray | str, limit: int = MAX_PAYLOAD) -> dict[str, Any]:
    """A JSON object from the broker, or PayloadError saying why not."""
    if len(payload) > limit:
        raise PayloadError(f"message of {len(payload)} bytes is over the {limit} byte limit")
    try:
        text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
        data = json.loads(text, parse_constant=_no_constants)
    except (UnicodeDecodeError, RecursionError):
        raise PayloadError("message is not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"message is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, dict):
        raise PayloadError("message is not a JSON object")
    return data


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Status(_Message):
    """``status``: retained birth message, and the retained last will with ``online: false``."""

    online: bool
    lab: str = Field(max_length=64)
    name: str = Field("", max_length=200)
    version: str = Field("", max_length=40)
    machines: list[str] = Field([], max_length=500)
    since: float | None = None


class Event(_Message):
    """One ``events`` message; kinds carry more fields, kept as they came."""

    model_config = ConfigDict(extra="allow")
    seq: int = Field(ge=0)
    time: float
    kind: str = Field(max_length=64)
    machine: str | None = Field(None, max_length=64)


class Request(_Message):
    """``machines/<id>/request`` from headquarters."""

    id: str = Field(min_length=1, max_length=100)
    kind: str = Field(min_length=1, max_length=64)
    args: dict[str, Any] = {}
    reply_to: str | None = Field(None, max_length=300)
    user: str | None = Field(None, max_length=64, description="who asked, at headquarters")


class Reply(_Message):
    """The lab's answer on ``reply_to`` (or the MQTT 5 response topic)."""

    id: str = Field(max_length=100)
    ok: bool
    result: Any = None
    error: str | None = None


class State(_Message):
    """``machines/<id>/state``: the MachineState shape; only the fields headquarters relies on are checked
    (the message itself is kept as it came)."""

    machine: str = Field(max_length=64)
    connected: bool
    state: str = Field(max_length=32)
    alarms: list[dict[str, Any]] = Field([], max_length=200)
    updated_at: float = 0.0


def validate(model: type[_Message], data: dict[str, Any]) -> Any:
    """``model`` filled from ``data``, or PayloadError naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise PayloadError(f"{where}: {first['msg']}") from None
