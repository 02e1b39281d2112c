"""The engine bridge (WebSocket) end to end: a real daemon on loopback over a tiny cast,
spoken to in JSON text frames and msgpack binary frames."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import grpc
import msgpack
import pytest
from bridge_harness import Conn
from server_harness import ADMIN, TOKEN, ServerThread, server_config
from server_harness_streams import wait_until
from websockets.exceptions import ConnectionClosed, InvalidStatus

from npc_runtime.client import NpcRuntimeError
from npc_runtime.server.auth import AuthPolicy

FRAMES = Path(__file__).resolve().parents[1] / "clients" / "protocol" / "frames.json"
MAX_FRAME = 64 * 1024
SHORT = {"max_tokens": 8, "seed": 1}
LONG = {"max_tokens": 1000, "seed": 3}


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_cast_dir, tiny_base):
    tmp = tmp_path_factory.mktemp("bridge")
    config = server_config(trained_cast_dir, tmp, tiny_base, bridge_max_frame_bytes=MAX_FRAME)
    running = ServerThread(config).start()
    yield running
    running.stop()


@pytest.fixture()
def conn(server):
    with Conn(server.bridge_url) as c:
        yield c


@pytest.fixture()
def grpc_client(server):
    with server.client() as c:
        yield c


def _events(frames: list[dict], call_id: str) -> list[dict]:
    return [f["event"] for f in frames if f["id"] == call_id and "event" in f]


def _kind(event: dict) -> str:
    return next(k for k in ("started", "token", "sentence", "final") if k in event)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_speak_matches_grpc(server, grpc_client, binary):
    with Conn(server.bridge_url, binary=binary) as conn:
        request = {
            "npc_id": "brann",
            "session_id": f"ws-{binary}",
            "text": "Can you mend my sword?",
        }
        frames = conn.call("Speak", {**request, "sampling": SHORT}, call_id="s")
        assert frames[-1] == {"id": "s", "done": True}
        events = _events(frames, "s")
        kinds = [_kind(e) for e in events]
        assert kinds[0] == "started" and kinds[-1] == "final"
        assert sum(len(e["token"]["token_ids"]) for e in events if "token" in e) == 8
        final = events[-1]["final"]
        assert final["finish_reason"] == "FINISH_REASON_LENGTH" and final["stored"] is True
        assert final["text"] == "".join(e["token"]["text"] for e in events if "token" in e).strip()

        # The same service behind both doors: the same reply to the same request.
        grpc_final = grpc_client.say(
            "brann", request["text"], session_id=f"grpc-{binary}", sampling=SHORT
        )
        assert grpc_final.text == final["text"]

        # Stored, and read back through the bridge.
        (reply,) = conn.call("GetSession", {"session_id": f"ws-{binary}"})
        turns = reply["response"]["turns"]
        assert [t["speaker_kind"] for t in turns] == ["SPEAKER_KIND_PLAYER", "SPEAKER_KIND_NPC"]
        assert turns[1]["text"] == final["text"] and turns[1]["seq"] == 2


def test_msgpack_unary_calls_and_camel_case_input(server):
    with Conn(server.bridge_url, binary=True) as conn:
        (reply,) = conn.call("ListNpcs", {})
        assert sorted(n["profile"]["id"] for n in reply["response"]["npcs"]) == [
            "brann",
            "marla",
            "pip",
        ]
        (reply,) = conn.call("GetNpc", {"npcId": "marla"})
        assert reply["response"]["profile"]["id"] == "marla"


def test_two_speaks_interleave_on_one_connection(server, conn):
    for call_id in ("a", "b"):
        conn.send(
            {
                "id": call_id,
                "method": "Speak",
                "request": {
                    "npc_id": "brann" if call_id == "a" else "marla",
                    "session_id": f"inter-{call_id}",
                    "text": "Tell me a story.",
                    "sampling": {"max_tokens": 40, "seed": 2},
                },
            }
        )
    frames = conn.until_done({"a", "b"})
    ids = [f["id"] for f in frames]
    for call_id in ("a", "b"):
        events = _events(frames, call_id)
        assert _kind(events[0]) == "started" and events[-1]["final"]["completion_tokens"] == 40
    # b's events arrive while a's stream is still going: both decode together.
    assert ids.index("b") < len(ids) - 1 - ids[::-1].index("a")


def test_cancel_by_id_and_connection_survives(server, conn):
    conn.send(
        {
            "id": "long",
            "method": "Speak",
            "request": {"npc_id": "pip", "session_id": "cancelled", "text": "Hi", "sampling": LONG},
        }
    )
    first = conn.recv()
    assert first["id"] == "long" and "started" in first["event"]
    conn.send({"id": "long", "cancel": True})
    frames = conn.until_done({"long"})
    assert frames[-1] == {
        "id": "long",
        "error": {"code": "CANCELLED", "message": "cancelled by the client"},
        "done": True,
    }
    assert wait_until(lambda: not server.daemon.service._flights)
    # A cancelled reply stores nothing; the id may be used again.
    (reply,) = conn.call("GetSession", {"session_id": "cancelled"}, call_id="long")
    assert reply["error"]["code"] == "NOT_FOUND"


def test_closing_the_connection_cancels_its_streams(server):
    conn = Conn(server.bridge_url)
    conn.send(
        {
            "id": "x",
            "method": "Speak",
            "request": {"npc_id": "pip", "session_id": "closed", "text": "Hi", "sampling": LONG},
        }
    )
    assert "started" in conn.recv()["event"]
    assert server.daemon.service._flights
    conn.ws.close()
    assert wait_until(lambda: not server.daemon.service._flights)


def test_service_errors_match_grpc(conn, grpc_client):
    bad = [
        ("NOT_FOUND", {"npc_id": "nobody", "session_id": "e", "text": "Hello?"}),
        ("INVALID_ARGUMENT", {"npc_id": "brann", "session_id": "e", "text": ""}),
        ("INVALID_ARGUMENT", {"npc_id": "brann", "session_id": "e", "text": "x" * 5000}),
    ]
    for code, request in bad:
        with pytest.raises(NpcRuntimeError) as grpc_error:
            grpc_client.say(request["npc_id"], request["text"], session_id="e")
        (reply,) = conn.call("Speak", request)
        assert reply["error"] == {"code": code, "message": grpc_error.value.message}
        assert grpc_error.value.code == code


def test_bad_frames_are_answered_and_the_connection_survives(conn):
    reply = conn.error({"id": "1", "method": "Dance", "request": {}})
    assert reply["id"] == "1" and reply["error"]["code"] == "UNIMPLEMENTED"
    assert "'Dance'" in reply["error"]["message"] and "Speak" in reply["error"]["message"]

    reply = conn.error("{not json")
    assert reply["id"] == "" and reply["error"]["code"] == "INVALID_ARGUMENT"
    assert "malformed frame" in reply["error"]["message"]
    conn.ws.send(b"\xc1")  # never used in msgpack; the reply is msgpack too
    reply = msgpack.unpackb(conn.ws.recv(timeout=60))
    assert reply["id"] == "" and reply["error"]["code"] == "INVALID_ARGUMENT"
    assert "not msgpack" in reply["error"]["message"]
    assert conn.error("[1, 2]")["error"]["code"] == "INVALID_ARGUMENT"

    reply = conn.error({"id": "2", "method": "GetNpc", "request": {"npc_id": 42}})
    assert reply["id"] == "2" and reply["error"]["code"] == "INVALID_ARGUMENT"
    assert "GetNpcRequest" in reply["error"]["message"]
    reply = conn.error({"id": "3", "method": "GetNpc", "request": {"colour": "red"}})
    assert "colour" in reply["error"]["message"]
    reply = conn.error({"id": "4", "method": "GetNpc", "request": []})
    assert reply["error"]["code"] == "INVALID_ARGUMENT"
    reply = conn.error({"method": "ListNpcs"})
    assert reply["id"] == "" and "'id'" in reply["error"]["message"]
    assert conn.error({"id": "5"})["error"]["code"] == "INVALID_ARGUMENT"

    reply = conn.error(json.dumps({"id": "6", "method": "ListNpcs", "pad": "x" * MAX_FRAME}))
    assert reply["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert f"limit of {MAX_FRAME} bytes" in reply["error"]["message"]

    (reply,) = conn.call("ListNpcs", {})
    assert len(reply["response"]["npcs"]) == 3


def test_a_frame_far_over_the_limit_closes_the_connection(server):
    with Conn(server.bridge_url) as conn:
        conn.ws.send("x" * (MAX_FRAME + 2**20 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv()
        assert closed.value.rcvd.code == 1009
    with Conn(server.bridge_url) as conn:  # the server goes on
        (reply,) = conn.call("ListNpcs", {})
        assert "response" in reply


def test_browser_origins_are_refused(server):
    with pytest.raises(InvalidStatus) as refused:
        Conn(server.bridge_url, origin="https://example.com")
    assert refused.value.response.status_code == 403


# -- auth -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def secured(tmp_path_factory, trained_cast_dir, tiny_base):
    tmp = tmp_path_factory.mktemp("bridge-auth")
    auth = AuthPolicy(token=TOKEN, admin_token=ADMIN)
    running = ServerThread(server_config(trained_cast_dir, tmp, tiny_base, auth=auth)).start()
    yield running
    running.stop()


def test_auth_header_and_frame_field(secured):
    lyra = {"profile": {"id": "lyra", "name": "Lyra", "profile": "A wandering bard."}}
    with Conn(secured.bridge_url) as conn:
        (reply,) = conn.call("ListNpcs", {})
        assert reply["error"]["code"] == "UNAUTHENTICATED"
        assert "Bearer" in reply["error"]["message"]
        (reply,) = conn.call("ListNpcs", {}, authorization="Bearer wrong")
        assert reply["error"]["code"] == "UNAUTHENTICATED"
        # A frame's authorization holds for the connection's later frames.
        (reply,) = conn.call("ListNpcs", {}, authorization=f"Bearer {TOKEN}")
        assert "response" in reply
        (reply,) = conn.call("GetNpc", {"npc_id": "pip"})
        assert reply["response"]["profile"]["id"] == "pip"
        (reply,) = conn.call("RegisterNpc", lyra)
        assert reply["error"]["code"] == "PERMISSION_DENIED"
        (reply,) = conn.call("RegisterNpc", lyra, authorization=f"Bearer {ADMIN}")
        assert reply["response"]["profile"]["id"] == "lyra"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with Conn(secured.bridge_url, binary=True, additional_headers=headers) as conn:
        (reply,) = conn.call("GetNpc", {"npc_id": "lyra"})
        assert reply["response"]["profile"]["name"] == "Lyra"


def test_the_token_is_checked_before_the_request_is_read(secured):
    """A stranger learns nothing of how a request parses, through either door, and the
    refusals and malformed requests are counted the same way on both."""
    bad = {"npc_id": 7, "nonsense": True}
    with Conn(secured.bridge_url) as conn:
        (reply,) = conn.call("GetNpc", bad)
        assert reply["error"]["code"] == "UNAUTHENTICATED"
        (reply,) = conn.call("GetNpc", bad, authorization=f"Bearer {TOKEN}")
        assert reply["error"]["code"] == "INVALID_ARGUMENT"
    with grpc.insecure_channel(secured.address) as channel:
        call = channel.unary_unary(
            "/npc_runtime.v1.NpcRuntime/GetNpc",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.RpcError) as refused:
            call(b"\xff\xff\xff")
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as refused:
            call(b"\xff\xff\xff", metadata=[("authorization", f"Bearer {TOKEN}")])
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    counted = secured.daemon.service.metrics.requests
    for code in ("UNAUTHENTICATED", "INVALID_ARGUMENT"):
        assert counted.labels("GetNpc", code)._value.get() >= 2, code


@pytest.mark.parametrize(
    "frame, fragment",
    [
        ('{"id": "a", "method": "ListNpcs", "requets": {}}', "unknown frame keys 'requets'"),
        ('{"id": "a", "method": "ListNpcs", "cancel": true}', "not both"),
        ('{"id": "a", "cancel": "yes"}', "'cancel' must be true"),
        ('{"id": "a", "method": "ListNpcs", "method": "Speak"}', "'method' appears twice"),
        (
            '{"id": "a", "method": "GetNpc", "request": {"npc_id": "pip", "npc_id": "x"}}',
            "'npc_id' appears twice",
        ),
        (msgpack.packb({"id": "a", "method": "ListNpcs", "extra": 1}), "unknown frame keys"),
    ],
)
def test_a_frame_is_read_whole_or_refused(server, frame, fragment):
    with Conn(server.bridge_url, binary=isinstance(frame, bytes)) as conn:
        reply = conn.error(frame)
        assert (
            reply["error"]["code"] == "INVALID_ARGUMENT" and fragment in reply["error"]["message"]
        )
        (reply,) = conn.call("ListNpcs", {})
        assert "response" in reply


def test_only_its_own_connection_cancels_a_reply(server):
    request = {"npc_id": "pip", "session_id": "own-cancel", "text": "Talk!", "request_id": "mine"}
    with Conn(server.bridge_url) as owner, Conn(server.bridge_url) as other:
        owner.send({"id": "s", "method": "Speak", "request": {**request, "sampling": LONG}})
        assert "started" in owner.recv()["event"]
        (reply,) = other.call("Cancel", {"request_id": "mine"})
        assert reply["error"]["code"] == "NOT_FOUND"
        with server.client() as grpc_client, pytest.raises(Exception, match="NOT_FOUND"):
            grpc_client.cancel("mine")
        assert "token" in owner.recv()["event"]  # still speaking
        owner.send({"id": "c", "method": "Cancel", "request": {"request_id": "mine"}})
        frames = owner.until_done({"s", "c"})
        final = next(f["event"]["final"] for f in frames if "final" in f.get("event", {}))
        assert final["finish_reason"] == "FINISH_REASON_CANCELLED"


# -- the protocol fixtures for engine clients -----------------------------------------
def _matches(shape, value) -> bool:
    types = {
        "<string>": str,
        "<number>": (int, float),
        "<integer>": int,
        "<bool>": bool,
        "<object>": dict,
        "<list>": list,
    }
    if shape == "<any>":
        return True
    if isinstance(shape, str) and shape in types:
        if shape in ("<number>", "<integer>") and isinstance(value, bool):
            return False
        return isinstance(value, types[shape])
    if isinstance(shape, dict):
        if "$one_of" in shape:
            return any(_matches(s, value) for s in shape["$one_of"])
        return isinstance(value, dict) and all(
            k in value and _matches(v, value[k]) for k, v in shape.items() if k != "$repeat"
        )
    if isinstance(shape, list):
        return (
            isinstance(value, list)
            and len(shape) == len(value)
            and all(_matches(s, v) for s, v in zip(shape, value))
        )
    return shape == value and type(shape) is type(value)


def _match_frames(shapes: list, frames: list[dict]) -> bool:
    at = 0
    for shape in shapes:
        if shape.get("$repeat"):
            while at < len(frames) and _matches(shape, frames[at]):
                at += 1
        elif at < len(frames) and _matches(shape, frames[at]):
            at += 1
        else:
            return False
    return at == len(frames)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_protocol_fixtures_replay(tmp_path, trained_cast_dir, tiny_base, binary):
    cases = json.loads(FRAMES.read_text())["cases"]
    running = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base)).start()
    try:
        with Conn(running.bridge_url, binary=binary) as conn:
            for case in cases:
                conn.send(case["send"])
                frames = []
                if case["expect"]:
                    frames = conn.until_done({case["expect"][-1]["id"]})
                assert _match_frames(case["expect"], frames), (case["name"], frames)
    finally:
        running.stop()


def test_stopping_the_daemon_closes_bridge_connections(tmp_path, trained_cast_dir, tiny_base):
    running = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base)).start()
    with Conn(running.bridge_url, max_queue=None) as conn:  # reads the close frame at once
        conn.send(
            {
                "id": "x",
                "method": "Speak",
                "request": {"npc_id": "pip", "session_id": "stop", "text": "Hi", "sampling": LONG},
            }
        )
        assert "started" in conn.recv()["event"]
        running.stop()  # grace 1 s, then the connections close, cancelling the rest
        assert not running.daemon.service._flights
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                conn.recv()
        assert closed.value.rcvd is None or closed.value.rcvd.code == 1001


def test_every_method_reaches_the_service_and_the_cli_sets_the_bridge(tmp_path):
    from npc_runtime import cli, cli_args
    from npc_runtime.server.frames import METHODS
    from npc_runtime.server.service import NpcService

    assert len(METHODS) == 13 and METHODS["RegisterNpc"].attribute == "register_npc"
    assert all(callable(getattr(NpcService, m.attribute)) for m in METHODS.values())
    streaming = [METHODS[m] for m in ("Speak", "React", "Converse", "ExpandNpc")]
    assert [m for m in METHODS.values() if m.streaming] == streaming

    def config(*extra):
        argv = ["serve", "--cast", str(tmp_path), "--data-dir", str(tmp_path), *extra]
        return cli._serve_config(cli_args.build_parser().parse_args(argv))

    assert config().bridge_port == 50052 and config().bridge_origins == ()
    # 0 picks a free port (a game reads which from the readiness line); --no-bridge: none.
    assert config("--bridge-port", "0").bridge_port == 0
    assert config("--no-bridge").bridge_port is None
    assert config().metrics_port is None and config("--metrics-port", "0").metrics_port == 0
    changed = config("--bridge-max-frame-bytes", "1000", "--bridge-origin", "https://a.b")
    assert changed.bridge_max_frame_bytes == 1000 and changed.bridge_origins == ("https://a.b",)


def test_no_token_reaches_the_log_or_other_users(tmp_path, trained_cast_dir, tiny_base):
    """At debug level websockets logs every header and frame: tokens are redacted. The
    data directory, the database and the cast's files are the owner's only."""
    lines: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: lines.append(handler.format(record))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    auth = AuthPolicy(token=TOKEN, admin_token=ADMIN)
    (tmp_path / "data").mkdir(mode=0o755)
    server = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base, auth=auth)).start()
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with Conn(server.bridge_url, additional_headers=headers) as conn:
            (reply,) = conn.call("ListNpcs", {}, authorization=f"Bearer {ADMIN}")
            assert "response" in reply
            lyra = {"id": "lyra", "name": "Lyra", "profile": "A bard."}
            (reply,) = conn.call("RegisterNpc", {"profile": lyra}, authorization=ADMIN)
            assert reply["error"]["code"] == "UNAUTHENTICATED"
        with server.client(token=TOKEN) as client:
            assert client.list_npcs()
    finally:
        server.stop()
        root.removeHandler(handler)
        root.setLevel(level)
    text = "\n".join(lines)
    assert "authorization" in text.lower()  # the frames were logged, the tokens not
    assert TOKEN not in text and ADMIN not in text
    data = server.daemon.config.data_dir
    assert data.stat().st_mode & 0o777 == 0o700
    for file in data.iterdir():
        assert file.stat().st_mode & 0o077 == 0, file
    assert (server.daemon.config.cast / "cast.json").stat().st_mode & 0o077 == 0
