"""Fuzzing what reads untrusted input: the bridge's frames (decode, frame_id, from_dict,
and the connection that uses them, alone and in a real daemon) and NPC profiles.

The only error a frame may cause is an INVALID_ARGUMENT error frame (UNIMPLEMENTED for
an unknown method), never another exception and never a closed connection; the only error
a profile may cause is ProfileError, and an accepted profile keeps the documented
invariants. In CI the examples are derandomized (the same ones every run);
NPC_FUZZ_PROFILE=npc-fuzz-explore NPC_FUZZ_SCALE=50 explores new ones.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest
from fuzz_settings import SCALE as _SCALE
from fuzz_settings import fuzz
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import assume, example, given
from hypothesis import strategies as st
from server_harness import ADMIN, ServerThread, server_config
from websockets.sync.client import connect

from npc_runtime.neeko.profile import (
    ID_PATTERN,
    NpcProfile,
    ProfileError,
    is_unicode,
    load_profile,
    profile_from_dict,
)
from npc_runtime.server.auth import AuthPolicy
from npc_runtime.server.bridge import Bridge, _Connection
from npc_runtime.server.door import DoorCore
from npc_runtime.server.errors import ServiceError
from npc_runtime.server.frames import (
    METHODS,
    SERVICE,
    Method,
    check_keys,
    decode,
    encode,
    frame_id,
    from_dict,
    to_dict,
)

# -- strategies -----------------------------------------------------------------------
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# Text as a client may send it inside JSON (where "\ud800" escapes an unpaired surrogate).
TEXT = st.text(max_size=24) | st.builds(
    lambda a, s, b: a + s + b, st.text(max_size=6), SURROGATES, st.text(max_size=6)
)
HUGE_INTS = st.integers(min_value=-(10**400), max_value=10**400)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INTS
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
)
MSGPACK_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24)
    | st.binary(max_size=24)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8))
)


def _nested(scalars, keys):
    return st.recursive(
        scalars,
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=4),
        max_leaves=16,
    )


JSON_VALUES = _nested(JSON_SCALARS, TEXT)
MSGPACK_VALUES = _nested(MSGPACK_SCALARS, st.text(max_size=12) | st.binary(max_size=12))
REAL_IDS = ("brann", "marla", "pip")
IDS = st.sampled_from([*REAL_IDS, "nobody", "", "../x", "a b", "x" * 65, "lyra"])

_F = FieldDescriptor
_INTS = {
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
}


def _valid_scalar(field) -> st.SearchStrategy:
    """Values the proto3 JSON mapping accepts for `field`."""
    if field.type == _F.TYPE_STRING:
        return IDS | st.text(max_size=24)
    if field.type == _F.TYPE_BOOL:
        return st.booleans()
    if field.type in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
        return finite | st.integers(-1000, 1000) | st.sampled_from(["NaN", "Infinity", "0.5"])
    if field.type in _INTS:
        low, high = _INTS[field.type]
        wide = field.type in (_F.TYPE_UINT64, _F.TYPE_INT64)
        numbers = st.integers(low, high) | st.integers(0, 100)
        return numbers | numbers.map(str) if wide else numbers
    if field.type == _F.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values]
        return st.sampled_from(names) | st.sampled_from(range(len(names)))
    raise AssertionError(f"no strategy for {field.full_name}")


@functools.cache
def message_dicts(descriptor, junk: bool, depth: int = 0) -> st.SearchStrategy:
    """Request dicts of `descriptor`, field by field; with `junk`, any field may hold any
    JSON-ish value instead, under its proto name or its lowerCamelCase name."""
    optional = {}
    for field in descriptor.fields:
        if field.type == _F.TYPE_MESSAGE:
            value = message_dicts(field.message_type, junk, depth + 1) if depth < 3 else st.just({})
        else:
            value = _valid_scalar(field)
        if field.is_repeated:
            value = st.lists(value, max_size=3)
        if junk:
            value = value | JSON_VALUES
        optional[field.json_name if junk and field.json_name != field.name else field.name] = value
    dicts = st.fixed_dictionaries({}, optional=optional)
    if junk:
        extra = st.dictionaries(TEXT, JSON_VALUES, max_size=2)
        dicts = st.builds(lambda a, b: {**b, **a}, dicts, extra) | dicts
    return dicts


METHOD_NAMES = st.sampled_from(sorted(METHODS))
FRAME_IDS = st.text(min_size=1, max_size=8) | st.sampled_from(["", "x" * 129]) | JSON_SCALARS


@st.composite
def frame_dicts(draw, values=JSON_VALUES) -> dict:
    """Frames near the protocol: a method, an id, a request of that method (or junk), and
    now and then a cancel or an authorization field, or a missing part."""
    name = draw(METHOD_NAMES | TEXT)
    method = METHODS.get(name)
    frame: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        frame["id"] = draw(FRAME_IDS)
    if draw(st.integers(0, 9)):
        frame["method"] = name
    if method is not None and draw(st.booleans()):
        frame["request"] = draw(message_dicts(method.request_class.DESCRIPTOR, junk=True))
    elif draw(st.booleans()):
        frame["request"] = draw(values)
    if not draw(st.integers(0, 9)):
        frame["cancel"] = draw(st.just(True) | values)
    if not draw(st.integers(0, 19)):
        frame["authorization"] = draw(values | st.just("Bearer wrong"))
    return frame


def _json_text(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


def _msgpack(value: Any) -> bytes:
    """msgpack of `value`; what msgpack cannot write (ints past 64 bits, surrogates) as a
    byte msgpack never uses, itself a bad frame."""
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (OverflowError, UnicodeEncodeError, ValueError):
        return b"\xc1"


JSON_FRAMES = st.builds(_json_text, frame_dicts() | JSON_VALUES, st.booleans()).filter(
    is_unicode  # a text frame is valid UTF-8: surrogates only as escapes
)
MSGPACK_FRAMES = st.builds(_msgpack, frame_dicts(MSGPACK_VALUES) | MSGPACK_VALUES)
WIRE_DATA = st.text(max_size=64) | st.binary(max_size=64) | JSON_FRAMES | MSGPACK_FRAMES


def _request_values(method: Method) -> st.SearchStrategy:
    return message_dicts(method.request_class.DESCRIPTOR, junk=True) | JSON_VALUES | MSGPACK_VALUES


# Found by this file: each crashed the bridge's connection (the frame got no answer and
# the connection closed with 1011) before frames.py and bridge.py were fixed.
SURROGATE_KEY = '{"id": "1", "method": "Speak", "request": {"\\ud800": 1}}'  # SystemError
HUGE_DOUBLE = '{"id": "2", "method": "Speak", "request": {"sampling": {"temperature": 1%s}}}' % (
    "0" * 400  # OverflowError
)
SURROGATE_ID = '{"id": "\\udc00", "method": "ListNpcs"}'  # an id no frame could carry back
DEEP_MSGPACK = b"\x91" * 5000  # StackError, whose message is empty


# -- the decoder ----------------------------------------------------------------------
def _check_invalid(exc: ServiceError, clean: bool = True) -> None:
    """INVALID_ARGUMENT with a message; `clean`: one a frame can carry as it is."""
    assert exc.code == "INVALID_ARGUMENT", (exc.code, exc.message)
    assert exc.message and (is_unicode(exc.message) or not clean)


@fuzz(150)
@given(WIRE_DATA)
@example(SURROGATE_KEY)
@example(HUGE_DOUBLE)
@example(SURROGATE_ID)
@example(DEEP_MSGPACK)
@example("[" * 100_000)
@example("1" * 5000)
def test_decoding_any_frame_raises_only_invalid_argument(data: str | bytes) -> None:
    try:
        frame = decode(data)
    except ServiceError as exc:
        _check_invalid(exc)
        return
    assert isinstance(frame, dict)
    try:
        call_id = frame_id(frame)
        assert isinstance(call_id, str) and 1 <= len(call_id) <= 128 and is_unicode(call_id)
    except ServiceError as exc:
        _check_invalid(exc)
    for method in METHODS.values():
        try:
            from_dict(frame.get("request"), method)
        except ServiceError as exc:
            _check_invalid(exc)


@fuzz(100)
@given(METHOD_NAMES.flatmap(lambda n: st.tuples(st.just(n), _request_values(METHODS[n]))))
@example(("Speak", {"sampling": {"temperature": 10**400}}))
@example(("Speak", {"\ud800": 1}))
@example(("ExpandNpc", {"records": [{"context": [{"speaker": {"a": [[[]]]}}]}]}))
def test_from_dict_raises_only_invalid_argument(case: tuple[str, Any]) -> None:
    name, value = case
    try:
        message = from_dict(value, METHODS[name])
    except ServiceError as exc:
        _check_invalid(exc, clean=False)  # error_frame escapes what a message quotes
        return
    assert isinstance(message, METHODS[name].request_class)


@fuzz(50)
@given(
    METHOD_NAMES.flatmap(
        lambda n: st.tuples(
            st.just(n), message_dicts(METHODS[n].request_class.DESCRIPTOR, junk=False)
        )
    ),
    st.text(min_size=1, max_size=128),
    st.booleans(),
)
def test_valid_frames_round_trip(case: tuple[str, dict], call_id: str, binary: bool) -> None:
    name, value = case
    method = METHODS[name]
    message = from_dict(value, method)  # every value the strategy makes is valid
    frame = {"id": call_id, "method": name, "request": to_dict(message)}
    decoded = decode(encode(frame, binary))
    assert decoded == frame
    assert frame_id(decoded) == call_id
    again = from_dict(decoded["request"], method)
    assert again.SerializeToString(deterministic=True) == message.SerializeToString(
        deterministic=True
    )


def test_decoder_messages_say_what_is_wrong() -> None:
    for data, words in [
        (DEEP_MSGPACK, "StackError"),
        (SURROGATE_ID, "unpaired UTF-16 surrogate"),
        (SURROGATE_KEY, "unpaired UTF-16 surrogate"),
    ]:
        with pytest.raises(ServiceError, match=words):
            decode(data)
    # Surrogate pairs (how ensure_ascii JSON writes an emoji) are ordinary text.
    assert frame_id(decode(json.dumps({"id": "\U0001f600"}))) == "\U0001f600"
    with pytest.raises(ServiceError, match="a number out of range") as exc:
        from_dict(decode(HUGE_DOUBLE)["request"], METHODS["Speak"])
    assert exc.value.code == "INVALID_ARGUMENT"


# -- a connection, without a network --------------------------------------------------
class _StubService:
    """Answers every method with an empty message of its reply type (one event for a
    stream)."""

    class metrics:  # noqa: N801 - counts nothing: refusals are counted by the real daemon
        class requests:  # noqa: N801
            @staticmethod
            def labels(*_):
                return SimpleNamespace(inc=lambda: None)

    def __getattr__(self, attribute: str):
        method = next(m for m in METHODS.values() if m.attribute == attribute)
        descriptor = SERVICE.methods_by_name[method.name].output_type
        reply = message_factory.GetMessageClass(descriptor)
        if method.streaming:

            async def stream(request, caller):
                yield reply()

            return stream

        async def unary(request, caller):
            return reply()

        return unary


class _FakeWebSocket:
    """What _Connection uses of a websockets connection; sends as websockets would."""

    def __init__(self) -> None:
        self.request = SimpleNamespace(headers={})
        self.remote_address = ("127.0.0.1", 0)
        self.id = "fake"
        self.protocol = SimpleNamespace(max_message_size=2**20)
        self.sent: list[str | bytes] = []

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            data.encode("utf-8")  # websockets sends text as UTF-8: surrogates would raise
        self.sent.append(data)


def _expected_reply_id(data: str | bytes) -> str | None:
    """The id the bridge must answer a frame with; None for a cancel (not answered)."""
    try:
        frame = decode(data)
        call_id = frame_id(frame)
    except ServiceError:
        return ""
    try:
        check_keys(frame)
    except ServiceError:
        return call_id  # a frame of unknown keys, or both a cancel and a request
    if "authorization" in frame and not isinstance(frame["authorization"], str):
        return call_id  # refused, cancel or not
    return None if frame.get("cancel") is True else call_id


@fuzz(100)
@given(WIRE_DATA)
@example(SURROGATE_KEY)
@example(HUGE_DOUBLE)
@example(SURROGATE_ID)
@example(DEEP_MSGPACK)
@example('{"id": "0", "cancel": true, "authorization": null}')  # answered: a bad field
def test_a_connection_answers_every_frame_once(data: str | bytes) -> None:
    bridge = Bridge(DoorCore(_StubService(), AuthPolicy()), "127.0.0.1", 0, max_frame_bytes=2**20)
    ws = _FakeWebSocket()

    async def receive() -> None:
        conn = _Connection(bridge, ws)
        await conn.receive(data)  # raises nothing, so the connection's loop goes on
        if conn.calls:
            await asyncio.wait(list(conn.calls.values()))
        assert not conn.calls and not conn.cancelled

    asyncio.run(receive())
    expected = _expected_reply_id(data)
    replies = [decode(sent) for sent in ws.sent]
    assert all(isinstance(sent, bytes) == isinstance(data, bytes) for sent in ws.sent)
    if expected is None:
        assert replies == []
        return
    assert [r.get("done") for r in replies] == [None] * (len(replies) - 1) + [True]
    assert all(r["id"] == expected for r in replies)
    error = replies[-1].get("error")
    if error is not None:
        assert error["code"] in ("INVALID_ARGUMENT", "UNIMPLEMENTED"), error
        assert error["message"]


# -- profiles -------------------------------------------------------------------------
_TEXT_LIMITS = {"name": 128, "profile": 8192, "style": 1024, "greeting": 1024}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
PROFILE_TEXT = st.text(
    st.characters() | SURROGATES | st.sampled_from(" \t\n\r\x00\x1b\x7f"), max_size=40
) | st.sampled_from(["", "  ", "Brann", " Brann\n", "x" * 129, "y" * 1025, "z" * 8193])


def profile_dicts() -> st.SearchStrategy:
    texts = {key: PROFILE_TEXT | JSON_VALUES for key in _TEXT_LIMITS}
    near = st.fixed_dictionaries(
        {},
        optional={
            "id": IDS | TEXT | JSON_VALUES,
            **texts,
            "examples": st.lists(PROFILE_TEXT, max_size=18) | JSON_VALUES,
        },
    )
    extra = st.dictionaries(
        st.text(max_size=8) | st.integers() | HUGE_INTS, JSON_VALUES, max_size=2
    )
    return near | st.builds(lambda a, b: {**a, **b}, near, extra) | JSON_VALUES


def _check_profile(profile: NpcProfile) -> None:
    """The documented invariants of an accepted profile."""
    assert ID_PATTERN.fullmatch(profile.id)
    assert profile.name and profile.profile
    for key, limit in _TEXT_LIMITS.items():
        _check_line(getattr(profile, key), limit)
    assert len(profile.examples) <= 16
    for line in profile.examples:
        assert line
        _check_line(line, 1024)
    assert profile_from_dict(profile.to_json()) == profile  # accepted as it is


def _check_line(text: str, limit: int) -> None:
    assert isinstance(text, str) and len(text) <= limit and text == text.strip()
    assert not _CONTROL.search(text) and is_unicode(text)


@fuzz(150)
@given(profile_dicts())
@example({1: "x", "a": 2})  # TypeError: keys of two types sorted together
@example({"id": 10**5000, "name": "x", "profile": "y"})  # ValueError: repr of a huge int
@example({"id": "a", "name": "b", "profile": "c", "examples": ["\x00"]})  # accepted
@example({"id": "a", "name": "\ud800", "profile": "c"})  # accepted
def test_profile_from_dict_raises_only_profile_error(data: Any) -> None:
    try:
        profile = profile_from_dict(data)
    except ProfileError as exc:
        assert str(exc) and len(str(exc)) < 500
        return
    _check_profile(profile)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string, mostly (its escapes are JSON's)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value is None or isinstance(value, dict):
        return '""'
    return str(value)


def _profile_files() -> st.SearchStrategy:
    """File bytes: arbitrary, or a profile dict written as JSON or TOML, maybe cut short."""
    dicts = profile_dicts().filter(lambda d: isinstance(d, dict))
    as_json = st.builds(lambda d: json.dumps(d) if _all_str_keys(d) else "{}", dicts)
    as_toml = st.builds(
        lambda d: "\n".join(
            f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in d.items() if isinstance(k, str)
        ),
        dicts,
    )
    text = (as_json | as_toml).map(lambda t: t.encode("utf-8", "surrogatepass"))
    cut = st.builds(lambda b, n: b[:n], text, st.integers(0, 200))
    return st.binary(max_size=200) | text | cut


def _all_str_keys(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _all_str_keys(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_all_str_keys(v) for v in value)
    return True


@fuzz(100)
@given(_profile_files(), st.sampled_from([".toml", ".json"]))
@example(b"[" * 100_000, ".json")  # RecursionError
@example(b"a = " + b"[" * 100_000, ".toml")  # RecursionError
@example(b"1" * 5000, ".json")  # ValueError: more than 4300 digits
@example(b'{"id": "a", "name": "\\ud800", "profile": "c"}', ".json")
@example(b'id = "a"\nname = "b"\nprofile = "c"\nexamples = ["\\u0007"]', ".toml")
def test_load_profile_raises_only_profile_error(tmp_path_factory, raw: bytes, suffix: str) -> None:
    path = tmp_path_factory.getbasetemp() / f"fuzz{suffix}"
    path.write_bytes(raw)
    try:
        profile = load_profile(path)
    except ProfileError as exc:
        assert str(exc).startswith(str(path))
        return
    _check_profile(profile)


def test_profile_suffix_is_checked_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "lyra.yaml"
    path.write_text("id: lyra")
    with pytest.raises(ProfileError, match="must end in .toml or .json"):
        load_profile(path)


# -- a real daemon --------------------------------------------------------------------
@pytest.fixture(scope="module")
def daemon(tmp_path_factory, trained_cast_dir, tiny_base):
    """Admin calls need a token the fuzzer never sends, so no frame can change the cast."""
    tmp = tmp_path_factory.mktemp("fuzz-daemon")
    auth = AuthPolicy(admin_token=ADMIN)
    running = ServerThread(server_config(trained_cast_dir, tmp, tiny_base, auth=auth)).start()
    yield running
    running.stop()


def _stored_state(server: ServerThread) -> tuple:
    cast = server.daemon.config.cast
    files = sorted(p.relative_to(cast).as_posix() for p in cast.rglob("*"))
    with server.client() as client:
        sessions = client.list_sessions(page_size=1000)
        turns = {
            s.id: [(t.seq, t.npc_id, t.text) for t in client.get_session(s.id).turns]
            for s in sessions.sessions
        }
    return hashlib.sha256((cast / "cast.json").read_bytes()).hexdigest(), files, turns


def _harmless(frame: Any) -> Any:
    """A Speak that could succeed would store a turn: such frames name no real NPC."""
    if isinstance(frame, dict) and isinstance(frame.get("request"), dict):
        request = frame["request"]
        for key in ("npc_id", "npcId"):
            if request.get(key) in REAL_IDS:
                request[key] = "nobody"
    return frame


LIVE_JSON = st.builds(lambda v, a: _json_text(_harmless(v), a), frame_dicts(), st.booleans())
LIVE_MSGPACK = st.builds(lambda v: _msgpack(_harmless(v)), frame_dicts(MSGPACK_VALUES))
LIVE_DATA = (
    st.text(max_size=64)
    | st.binary(max_size=64)
    | LIVE_JSON.filter(is_unicode)
    | LIVE_MSGPACK
    | st.builds(lambda v: _json_text(v, True), JSON_VALUES)
)
PROBE = "fuzz-probe"


@pytest.fixture(scope="module")
def live(daemon):
    with daemon.client() as client:
        assert client.say("pip", "Hello", session_id="kept", sampling={"max_tokens": 4}).stored
    before = _stored_state(daemon)
    with connect(daemon.bridge_url, open_timeout=30, max_size=None) as ws:
        state = SimpleNamespace(server=daemon, ws=ws, sent=0)
        yield state
        # The same connection still serves, and nothing stored changed.
        ws.send(json.dumps({"id": "after", "method": "ListNpcs"}))
        reply = json.loads(ws.recv(timeout=60))
        assert reply["id"] == "after" and len(reply["response"]["npcs"]) == 3
    assert state.sent >= 100 * _SCALE  # a few hundred frames, one connection
    service = daemon.daemon.service
    assert not service._flights and not service._busy_sessions and not service._speaking
    assert _stored_state(daemon) == before


@fuzz(200)
@given(LIVE_DATA)
@example(SURROGATE_KEY)
@example(HUGE_DOUBLE)
@example(SURROGATE_ID)
@example(DEEP_MSGPACK)
def test_a_running_bridge_answers_random_frames(live, data: str | bytes) -> None:
    expected = _expected_reply_id(data)
    assume(expected != PROBE)
    ws = live.ws
    ws.send(data)
    binary = isinstance(data, bytes)
    probe = {"id": PROBE, "method": "GetStatus"}
    ws.send(msgpack.packb(probe) if binary else json.dumps(probe))
    waiting = {PROBE} if expected is None else {PROBE, expected}
    while waiting:
        raw = ws.recv(timeout=60)
        assert isinstance(raw, bytes) == binary
        reply = msgpack.unpackb(raw) if binary else json.loads(raw)
        assert reply["id"] in waiting, (reply, data)
        if "error" in reply:
            assert reply["error"]["code"] in (
                "INVALID_ARGUMENT",
                "UNIMPLEMENTED",
                "NOT_FOUND",
                "UNAUTHENTICATED",
                "PERMISSION_DENIED",
                "FAILED_PRECONDITION",
            ), (reply, data)
        if reply.get("done"):
            waiting.discard(reply["id"])
        else:
            assert "event" in reply, reply
    live.sent += 1
