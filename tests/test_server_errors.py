"""Every refusal of the daemon, with its status code, and that refusals change nothing;
tokens on and off."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from server_harness import ADMIN, TOKEN, ServerThread, server_config
from server_harness_streams import StreamWatcher, village_character

from npc_runtime.client import NpcRuntimeError
from npc_runtime.server.auth import AuthPolicy
from npc_runtime.server.config import ServiceConfig
from npc_runtime.server.errors import ServiceError

LONG = {"max_tokens": 1000, "seed": 3}
LYRA = {"id": "lyra", "name": "Lyra", "profile": "A bard who sings of roads."}


@pytest.fixture()
def make_server(tmp_path, trained_cast_dir, tiny_base):
    started = []

    def make(**changes) -> ServerThread:
        folder = tmp_path / f"server{len(started)}"
        server = ServerThread(server_config(trained_cast_dir, folder, tiny_base, **changes))
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


def _error(call) -> tuple[str, str]:
    with pytest.raises(NpcRuntimeError) as err:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    return err.value.code, err.value.message


def _stored(server: ServerThread) -> tuple[bytes, list]:
    """What the server keeps on disk: the cast manifest and every session's turns."""
    with server.client() as c:
        sessions = [c.get_session(s.id) for s in c.list_sessions().sessions]
    return (server.daemon.config.cast / "cast.json").read_bytes(), sessions


def test_each_error_code_and_nothing_stored_changes(make_server):
    server = make_server(service=ServiceConfig(max_text_bytes=64))
    c = server.client()
    c.say("brann", "Hello", session_id="s1", sampling={"max_tokens": 3})
    c.register_npc(LYRA)
    before = _stored(server)

    def speak(**kw):
        args = {"npc_id": "brann", "text": "Hi", "session_id": "s1", **kw}
        return c.speak(args.pop("npc_id"), args.pop("text"), **args)

    not_found = [
        lambda: speak(npc_id="nobody"),
        lambda: c.get_npc("nobody"),
        lambda: c.remove_npc("nobody"),
        lambda: c.get_session("nosuch"),
        lambda: c.reset_session("nosuch"),
        lambda: c.cancel("no-such-request"),
    ]
    for call in not_found:
        assert _error(call)[0] == "NOT_FOUND"

    invalid = {
        "text is empty": lambda: speak(text="   "),
        "65 bytes of UTF-8; the limit is 64": lambda: speak(text="é" * 32 + "x"),
        "control characters": lambda: speak(text="hi\x00there"),
        "temperature must be": lambda: speak(sampling={"temperature": -1}),
        "top_p must be in (0, 1]": lambda: speak(sampling={"top_p": 0}),
        "max_tokens must be in 1..1024": lambda: speak(sampling={"max_tokens": 5000}),
        "repetition_penalty": lambda: speak(sampling={"repetition_penalty": 9}),
        "invalid npc_id '../etc'": lambda: speak(npc_id="../etc"),
        "invalid session_id 'a/b'": lambda: speak(session_id="a/b"),
        "invalid session_id ''": lambda: speak(session_id=""),
        "invalid request_id": lambda: speak(request_id="x y"),
        "speaker_name must be": lambda: speak(speaker_name="Me: evil"),
        "the NPC's own name": lambda: speak(speaker_name="Brann Ironhand"),
        "profile: 'name' is required": lambda: c.register_npc({"id": "x", "profile": "p"}),
        "profile: invalid NPC id '../x'": lambda: c.register_npc({**LYRA, "id": "../x"}),
        "profile: 'profile' is 9000": lambda: c.register_npc(
            {**LYRA, "id": "y", "profile": "a" * 9000}
        ),  # noqa: E501
        "invalid npc_id '..'": lambda: c.get_npc(".."),
        "records is empty": lambda: c.expand_npc({**LYRA, "id": "z"}, []),
        "records[0]: 'reply' must be": lambda: c.expand_npc({**LYRA, "id": "z"}, [{"reply": " "}]),
        "training.epochs must be": lambda: c.expand_npc(
            {**LYRA, "id": "z"}, [{"reply": "hi"}], {"epochs": 0}
        ),
        "training.block_batch_size must be": lambda: c.expand_npc(
            {**LYRA, "id": "z"}, [{"reply": "hi"}], {"block_batch_size": 0}
        ),
        "page_size must be at most 1000": lambda: c.list_sessions(page_size=5000),
        "page_token is not one": lambda: c.list_sessions(page_token="../x"),
    }
    for fragment, call in invalid.items():
        code, message = _error(call)
        assert code == "INVALID_ARGUMENT" and fragment in message, (fragment, message)

    assert _error(lambda: c.register_npc({**LYRA, "name": "Other"}))[0] == "ALREADY_EXISTS"
    assert _error(lambda: c.register_npc({**LYRA, "id": "brann"}))[0] == "ALREADY_EXISTS"
    code, message = _error(lambda: c.remove_npc(c.get_npc("lyra").blend[0].block_id))
    assert code == "FAILED_PRECONDITION" and "remove those NPCs first" in message
    assert _stored(server) == before


def test_busy_sessions_streams_and_request_ids(make_server):
    server = make_server(service=ServiceConfig(max_streams=2))
    c = server.client()
    c.say("marla", "Hello", session_id="s1", sampling={"max_tokens": 2})
    before = _stored(server)
    first = StreamWatcher(
        c.speak("brann", "Go on", session_id="s1", sampling=LONG, request_id="r1")
    )
    first.start()
    assert first.wait_tokens(1)

    code, message = _error(lambda: c.speak("marla", "Me too", session_id="s1"))
    assert code == "FAILED_PRECONDITION" and "one reply at a time per session" in message
    assert _error(lambda: c.reset_session("s1"))[0] == "FAILED_PRECONDITION"
    assert _error(lambda: c.remove_npc("brann"))[0] == "FAILED_PRECONDITION"
    code, _ = _error(lambda: c.speak("pip", "Hi", session_id="s2", request_id="r1"))
    assert code == "ALREADY_EXISTS"

    second = StreamWatcher(c.speak("pip", "Run!", session_id="s2", sampling=LONG))
    second.start()
    assert second.wait_tokens(1)
    code, message = _error(lambda: c.speak("marla", "Hi", session_id="s3"))
    assert code == "RESOURCE_EXHAUSTED" and "2 streams in flight" in message
    for watcher in (first, second):
        c.cancel(watcher.request_id)
        watcher.join(30)
    assert _stored(server) == before
    assert c.say("marla", "Now?", session_id="s3", sampling={"max_tokens": 2}).stored
    server.daemon.service.closing = True  # as during shutdown
    assert _error(lambda: c.speak("marla", "Wait", session_id="s4"))[0] == "UNAVAILABLE"
    assert _error(lambda: c.register_npc(LYRA))[0] == "UNAVAILABLE"


def test_two_registrations_of_one_id_at_once(make_server):
    """Both calls are in flight together (the embedding is slowed down so they overlap):
    exactly one wins."""
    server = make_server()
    cast = server.daemon.service.cast
    embed = cast.embed_profile
    cast.embed_profile = lambda profile: (time.sleep(0.5), embed(profile))[1]
    barrier = threading.Barrier(2)
    results: list[str] = []

    def register(name: str) -> None:
        with server.client() as c:
            barrier.wait()
            try:
                results.append(c.register_npc({**LYRA, "name": name}).profile.name)
            except NpcRuntimeError as exc:
                results.append(exc.code)

    threads = [threading.Thread(target=register, args=(n,)) for n in ("One", "Two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results)[0] == "ALREADY_EXISTS" and sorted(results)[1] in ("One", "Two")
    with server.client() as c:
        assert c.get_npc("lyra").profile.name == sorted(results)[1]


def test_tokens_client_and_admin(make_server):
    server = make_server(auth=AuthPolicy(token=TOKEN, admin_token=ADMIN))
    anonymous, wrong = server.client(), server.client(token="guess")
    user, admin = server.client(token=TOKEN), server.client(token=TOKEN, admin_token=ADMIN)
    for c in (anonymous, wrong):
        code, message = _error(c.list_npcs)
        assert code == "UNAUTHENTICATED" and "authorization: Bearer" in message
        assert _error(lambda c=c: c.speak("brann", "Hi"))[0] == "UNAUTHENTICATED"
    assert len(user.list_npcs()) == 3
    assert user.say("brann", "Hi", session_id="s", sampling={"max_tokens": 2}).stored
    profile, records = village_character("zef", 2)
    for call in (
        lambda: user.register_npc(LYRA),
        lambda: user.expand_npc(profile, records),
        lambda: user.remove_npc("pip"),
        lambda: user.reset_session("s"),
    ):
        code, message = _error(call)
        assert code == "PERMISSION_DENIED" and "admin token" in message
    assert admin.register_npc(LYRA).profile.id == "lyra"
    assert admin.reset_session("s") == 2
    # The standard health service needs no token.
    with grpc.insecure_channel(server.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    metrics = server.daemon.service.metrics.requests
    assert metrics.labels("ListNpcs", "UNAUTHENTICATED")._value.get() == 2


def test_no_token_on_loopback_and_a_token_required_elsewhere(make_server, tmp_path):
    open_server = make_server()
    assert open_server.daemon.config.host == "127.0.0.1"
    assert len(open_server.client().list_npcs()) == 3
    with pytest.raises(ServiceError, match="requires a token"):
        make_server(host="0.0.0.0")
    anywhere = make_server(host="0.0.0.0", auth=AuthPolicy(token=TOKEN))
    assert _error(anywhere.client().list_npcs)[0] == "UNAUTHENTICATED"
    assert len(anywhere.client(token=TOKEN).list_npcs()) == 3


def test_a_failed_save_undoes_the_change_in_memory_too(make_server):
    server = make_server()
    c = server.client()
    c.register_npc(LYRA)  # blends three blocks: remove it first to free them
    cast = server.daemon.service.cast
    manifest = (server.daemon.config.cast / "cast.json").read_bytes()
    blocks = list(cast.neeko.block_ids)
    pip = {k: v.clone() for k, v in cast.neeko.block_state("pip").items()}

    def broken_save(*args):
        raise OSError(28, "No space left on device")

    cast.save = broken_save
    profile, records = village_character("zef", 2)
    calls = [
        lambda: c.register_npc({**LYRA, "id": "nova", "name": "Nova"}),
        lambda: c.remove_npc("lyra"),
        lambda: c.expand_npc(profile, records, {"epochs": 1}),
    ]
    for call in calls:
        code, message = _error(call)
        assert code == "RESOURCE_EXHAUSTED" and "No space left" in message
        assert "nothing changed" in message
    del cast.save
    c.remove_npc("lyra")
    manifest = (server.daemon.config.cast / "cast.json").read_bytes()
    cast.save = broken_save
    assert _error(lambda: c.remove_npc("pip"))[0] == "RESOURCE_EXHAUSTED"  # pip comes back

    assert [n.profile.id for n in c.list_npcs()] == ["brann", "marla", "pip"]
    assert sorted(cast.neeko.block_ids) == sorted(blocks)
    state = cast.neeko.block_state("pip")
    assert all((state[k] == v).all() for k, v in pip.items())
    assert (server.daemon.config.cast / "cast.json").read_bytes() == manifest
    assert c.say("pip", "Still there?", session_id="p", sampling={"max_tokens": 2}).stored
