"""tinyllm.serve.protocol: request parsing is total (only ProtocolError escapes), replies are type-checked."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm.knowledge.text import MAX_REQUEST_CHARS
from tinyllm.serve.protocol import (
    MAX_ALTERNATIVES,
    MAX_REQUEST_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    Request,
    check_suggest_reply,
    encode,
    encode_request,
    error_reply,
    ok_reply,
    parse_reply,
    parse_request,
    read_message,
)


def _parse_or_protocol_error(line: bytes) -> Request | None:
    try:
        req = parse_request(line)
    except ProtocolError as exc:
        assert str(exc) and exc.code
        return None
    assert isinstance(req, Request)
    assert req.op in ("suggest", "ping", "shutdown", "reload")
    if req.op == "suggest":
        assert req.instruction and len(req.instruction) <= MAX_REQUEST_CHARS
        req.instruction.encode("utf-8")  # never a lone surrogate
        assert 1 <= req.n <= MAX_ALTERNATIVES
    return req


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_protocol_error(data: bytes) -> None:
    _parse_or_protocol_error(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries(
    {},
    optional={
        "v": st.one_of(st.just(PROTOCOL_VERSION), json_values),
        "op": st.one_of(st.sampled_from(["suggest", "ping", "shutdown", "reload", "nope"]), json_values),
        "instruction": st.one_of(st.text(max_size=600), json_values),
        "platform": st.one_of(st.sampled_from(["linux", "macos", "common", "windows"]), json_values),
        "n": st.one_of(st.integers(-2, 12), json_values),
    },
))
def test_arbitrary_request_objects_only_raise_protocol_error(obj: dict) -> None:
    _parse_or_protocol_error(json.dumps(obj).encode())


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_json_only_raises_protocol_error(value: object) -> None:
    _parse_or_protocol_error(json.dumps(value).encode())


def test_valid_suggest_round_trip_normalises_instruction() -> None:
    line = encode_request("suggest", instruction="  list \u201clarge\u201d\x1b[31m files.\n", platform="macos", n=3)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    req = parse_request(line)
    assert req == Request(op="suggest", v=PROTOCOL_VERSION, instruction='list "large" files', platform="macos", n=3)


def test_defaults_for_platform_and_n() -> None:
    req = parse_request(b'{"v": 1, "op": "suggest", "instruction": "x"}')
    assert (req.platform, req.n) == ("linux", 1)


@pytest.mark.parametrize(
    "obj, fragment",
    [
        ([], "JSON object"),
        ({"op": "suggest", "instruction": "x"}, "missing protocol version"),
        ({"v": "1", "op": "ping"}, "'v' must be an integer"),
        ({"v": True, "op": "ping"}, "'v' must be an integer"),
        ({"v": 1, "op": "explode"}, "unknown op"),
        ({"v": 1, "op": "suggest"}, "'instruction' must be a string"),
        ({"v": 1, "op": "suggest", "instruction": 5}, "'instruction' must be a string"),
        ({"v": 1, "op": "suggest", "instruction": " \t\x07 "}, "empty instruction"),
        ({"v": 1, "op": "suggest", "instruction": "a" * (MAX_REQUEST_CHARS + 1)}, "too long"),
        ({"v": 1, "op": "suggest", "instruction": "a" * 10_000}, "too long"),
        ({"v": 1, "op": "suggest", "instruction": "x", "platform": "windows"}, "'platform'"),
        ({"v": 1, "op": "suggest", "instruction": "x", "n": 0}, "'n' must be from 1"),
        ({"v": 1, "op": "suggest", "instruction": "x", "n": MAX_ALTERNATIVES + 1}, "'n' must be from 1"),
        ({"v": 1, "op": "suggest", "instruction": "x", "n": True}, "'n' must be an integer"),
        ({"v": 1, "op": "suggest", "instruction": "x", "n": 2.0}, "'n' must be an integer"),
        ({"v": 99, "op": "suggest", "instruction": "x"}, "protocol version 99 not supported"),
    ],
)
def test_invalid_requests(obj: object, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(json.dumps(obj).encode())
    assert fragment in str(info.value)


def test_version_mismatch_has_its_own_code_but_ping_and_shutdown_are_versionless() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(b'{"v": 2, "op": "reload"}')
    assert info.value.code == "version"
    assert parse_request(b'{"v": 7, "op": "ping"}') == Request(op="ping", v=7)
    assert parse_request(b'{"v": 0, "op": "shutdown"}').op == "shutdown"


@pytest.mark.parametrize(
    "line",
    [b"", b"\n", b"{", b"nul", b'{"v": 1, "op": "ping"', b"\xff\xfe{}", b"[" * 50_000, b'{"n": NaN}',
     b'{"v": 1e999999, "op": "ping"}', b'{"v": ' + b"9" * 5000 + b', "op": "ping"}'],
)
def test_malformed_lines(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_request(line)


def test_oversized_request() -> None:
    line = encode_request("suggest", instruction="x", pad="y" * MAX_REQUEST_BYTES)
    with pytest.raises(ProtocolError) as info:
        parse_request(line)
    assert info.value.code == "too_large"


def test_lone_surrogates_are_replaced() -> None:
    req = parse_request(b'{"v": 1, "op": "suggest", "instruction": "list \\ud800 files"}')
    assert req.instruction == "list ? files"


def test_unknown_keys_are_ignored() -> None:
    assert parse_request(b'{"v": 1, "op": "ping", "future": {"x": [1]}}').op == "ping"


def test_replies() -> None:
    ok = parse_reply(encode(ok_reply(command="ls", alternatives=[["ls", 0.0]], warnings=[], source="model",
                                     timing_ms=1.5)))
    assert ok["ok"] is True and ok["v"] == PROTOCOL_VERSION
    assert check_suggest_reply(ok)["command"] == "ls"
    err = parse_reply(encode(error_reply("bad\nthing  here", "backend")))
    assert err == {"v": PROTOCOL_VERSION, "ok": False, "error": "bad thing here", "code": "backend"}
    for bad in (b'{"ok": true}', b'{"v": 1}', b'{"v": 1, "ok": false}', b'{"v": 1, "ok": "yes"}', b"[]"):
        with pytest.raises(ProtocolError):
            parse_reply(bad)


@pytest.mark.parametrize(
    "fields",
    [
        {"alternatives": [["ls", 0.0]]},
        {"command": 3},
        {"command": "ls", "alternatives": [["ls"]]},
        {"command": "ls", "alternatives": [["ls", "high"]]},
        {"command": "ls", "alternatives": [["ls", True]]},
        {"command": "ls", "warnings": "careful"},
        {"command": "ls", "source": 1},
        {"command": "ls", "timing_ms": "fast"},
    ],
)
def test_suggest_reply_type_checks(fields: dict) -> None:
    with pytest.raises(ProtocolError):
        check_suggest_reply({"v": 1, "ok": True, **fields})


def test_read_message() -> None:
    stream = io.BytesIO(b'{"a": 1}\n{"b": 2}\n')
    assert read_message(stream, 100) == b'{"a": 1}\n'
    assert read_message(stream, 100) == b'{"b": 2}\n'
    assert read_message(stream, 100) == b""
    with pytest.raises(ProtocolError) as info:
        read_message(io.BytesIO(b"x" * 101 + b"\n"), 100)
    assert info.value.code == "too_large"
    assert read_message(io.BytesIO(b"x" * 99 + b"\n"), 100) == b"x" * 99 + b"\n"
