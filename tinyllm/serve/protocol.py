"""The client <-> daemon wire protocol: one JSON object per line over a Unix domain socket.

Requests::

    {"v": 1, "op": "suggest", "instruction": "list large files", "platform": "linux", "n": 1, "ack": true}
    {"v": 1, "op": "ping"}        -> package version, protocol version, pid, model path, stats
    {"v": 1, "op": "reload"}      -> reload the model and the user pairs
    {"v": 1, "op": "shutdown"}

Replies are ``{"v": 1, "ok": true, ...}`` or ``{"v": 1, "ok": false, "error": "...", "code": "..."}``.
``ping`` and ``shutdown`` are accepted whatever the client's ``v`` is, so any client can find out
which version a daemon speaks and ask an incompatible one to go away. Unknown keys are ignored
(forward compatibility). With ``"ack": true`` the daemon sends an empty line as soon as it has read
a suggest request, before the reply: a client can tell a daemon that is working on its request from
one that will never answer (stopped, wedged). Pure standard library; ``parse_request`` is pure so it can be fuzzed.
"""

from __future__ import annotations

import json
from collections import namedtuple

from tinyllm.formats.prompt import PLATFORMS
from tinyllm.formats.settings import MAX_ALTERNATIVES
from tinyllm.knowledge.text import MAX_REQUEST_CHARS, normalize_instruction

# typing is not imported at run time: it costs ~3 ms of the thin client's start-up (every
# `nl2cmd` call); annotations are strings (PEP 563).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 64 * 1024
"""Largest request line (bytes, newline included); longer => error reply and the connection is closed."""
MAX_REPLY_BYTES = 1024 * 1024
OPS = ("suggest", "ping", "shutdown", "reload")
VERSIONLESS_OPS = ("ping", "shutdown")


class ProtocolError(Exception):
    """A malformed, oversized or unsupported message. `code` is a short machine-readable reason."""

    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(message)
        self.code = code


class Request(namedtuple("Request", "op v instruction platform n ack",
                         defaults=(PROTOCOL_VERSION, "", "linux", 1, False))):
    """A validated request: op (str), v (int), instruction (str, already normalised by
    tinyllm.knowledge.text.normalize_instruction), platform (str), n (int), ack (bool: acknowledge first)."""

    __slots__ = ()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _loads(line: bytes, limit: int) -> Any:
    """Strict JSON decode of one line: size limit, UTF-8 only, no NaN/Infinity."""
    if not isinstance(line, (bytes, bytearray)):
        raise ProtocolError("message must be bytes")
    if len(line) > limit:
        raise ProtocolError(f"message too large ({len(line)} bytes; limit {limit})", code="too_large")
    try:
        text = bytes(line).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"message is not valid UTF-8 (byte {exc.start})") from None
    text = text.strip()
    if not text:
        raise ProtocolError("empty message")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; deep nesting => RecursionError
        raise ProtocolError(f"malformed JSON: {str(exc)[:80]}") from None


def clean_text(text: str) -> str:
    """Replace lone surrogates (undecodable input) so the text can always be encoded as UTF-8."""
    return text.encode("utf-8", "replace").decode("utf-8")


def validate_instruction(raw: str) -> str:
    """Normalise an instruction and check it is non-empty and short enough; raises ProtocolError."""
    instruction = normalize_instruction(clean_text(raw))
    if not instruction:
        raise ProtocolError("empty instruction", code="bad_instruction")
    if len(instruction) > MAX_REQUEST_CHARS:
        raise ProtocolError(
            f"instruction too long ({len(instruction)} characters; max {MAX_REQUEST_CHARS})",
            code="bad_instruction",
        )
    return instruction


def _int_field(obj: dict[str, Any], key: str, default: int | None) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{key!r} must be an integer")
    return value


def parse_request(line: bytes) -> Request:
    """Parse and validate one request line. Raises only ProtocolError."""
    obj = _loads(line, MAX_REQUEST_BYTES)
    if not isinstance(obj, dict):
        raise ProtocolError("request must be a JSON object")
    op = obj.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise ProtocolError(f"unknown op; expected one of {', '.join(OPS)}", code="bad_op")
    if "v" not in obj:
        raise ProtocolError("missing protocol version 'v'")
    v = _int_field(obj, "v", None)
    if op in VERSIONLESS_OPS:
        return Request(op=op, v=v)
    if v != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {v} not supported (daemon speaks {PROTOCOL_VERSION})", code="version")
    if op != "suggest":
        return Request(op=op, v=v)
    raw = obj.get("instruction")
    if not isinstance(raw, str):
        raise ProtocolError("'instruction' must be a string")
    if len(raw) > 4 * MAX_REQUEST_CHARS:  # cheap bound before normalising
        raise ProtocolError(f"instruction too long ({len(raw)} characters; max {MAX_REQUEST_CHARS})",
                            code="bad_instruction")
    instruction = validate_instruction(raw)
    platform = obj.get("platform", "linux")
    if not isinstance(platform, str) or platform not in PLATFORMS:
        raise ProtocolError(f"'platform' must be one of {', '.join(PLATFORMS)}")
    n = _int_field(obj, "n", 1)
    if not 1 <= n <= MAX_ALTERNATIVES:
        raise ProtocolError(f"'n' must be from 1 to {MAX_ALTERNATIVES}")
    return Request(op=op, v=v, instruction=instruction, platform=platform, n=n, ack=obj.get("ack") is True)


def encode(obj: dict[str, Any]) -> bytes:
    """One message: compact ASCII JSON plus a newline (ASCII => no encoding surprises on either side)."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


def encode_request(op: str, **fields: Any) -> bytes:
    """A request line for `op` with the current protocol version."""
    return encode({"v": PROTOCOL_VERSION, "op": op, **fields})


def ok_reply(**fields: Any) -> dict[str, Any]:
    """A success reply."""
    return {"v": PROTOCOL_VERSION, "ok": True, **fields}


def error_reply(message: str, code: str = "error") -> dict[str, Any]:
    """A failure reply with a one-line message."""
    return {"v": PROTOCOL_VERSION, "ok": False, "error": " ".join(str(message).split()) or code, "code": code}


def parse_reply(line: bytes) -> dict[str, Any]:
    """Parse a reply line: a JSON object with an int ``v`` and a bool ``ok`` (error replies carry a string)."""
    obj = _loads(line, MAX_REPLY_BYTES)
    if not isinstance(obj, dict):
        raise ProtocolError("reply must be a JSON object")
    v = obj.get("v")
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProtocolError("reply lacks an integer 'v'")
    if not isinstance(obj.get("ok"), bool):
        raise ProtocolError("reply lacks a boolean 'ok'")
    if not obj["ok"] and not isinstance(obj.get("error"), str):
        raise ProtocolError("error reply lacks an 'error' string")
    return obj


def check_suggest_reply(obj: dict[str, Any]) -> dict[str, Any]:
    """Type-check a successful suggest reply (a buggy or foreign daemon must not crash the client)."""
    if not isinstance(obj.get("command"), str):
        raise ProtocolError("reply lacks a 'command' string")
    alts = obj.get("alternatives", [])
    if not isinstance(alts, list) or not all(
        isinstance(a, list) and len(a) == 2 and isinstance(a[0], str)
        and isinstance(a[1], (int, float)) and not isinstance(a[1], bool)
        for a in alts
    ):
        raise ProtocolError("reply 'alternatives' must be a list of [command, score]")
    warnings = obj.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise ProtocolError("reply 'warnings' must be a list of strings")
    if not isinstance(obj.get("source", "model"), str):
        raise ProtocolError("reply 'source' must be a string")
    timing = obj.get("timing_ms", 0.0)
    if isinstance(timing, bool) or not isinstance(timing, (int, float)):
        raise ProtocolError("reply 'timing_ms' must be a number")
    conf = obj.get("confidence")
    if conf is not None and (isinstance(conf, bool) or not isinstance(conf, (int, float))):
        raise ProtocolError("reply 'confidence' must be a number or null")
    notes = obj.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ProtocolError("reply 'notes' must be a list of strings")
    return obj


def read_message(rfile: BinaryIO, limit: int) -> bytes:
    """Read one newline-terminated message of at most `limit` bytes.

    Returns b"" at EOF. Raises ProtocolError(code="too_large") when the line is longer than
    `limit` (the rest of the line is not consumed: the caller should close the connection).
    """
    line = rfile.readline(limit + 1)
    if len(line) > limit:
        raise ProtocolError(f"message too large (over {limit} bytes)", code="too_large")
    return line
