"""The daemon end to end: a real gRPC server on loopback over a tiny cast."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from server_harness import ServerThread, server_config
from server_harness_streams import StreamWatcher, village_character, wait_until

import npc_runtime.server.live_cast as live_cast_module
from npc_runtime import load_cast
from npc_runtime.client import AsyncNpcClient, NpcRuntimeError
from npc_runtime.v1 import npc_runtime_pb2 as pb

LONG = {"max_tokens": 1000, "seed": 3}
SHORT = {"max_tokens": 12, "seed": 1}
LYRA = {"id": "lyra", "name": "Lyra the wandering bard", "profile": "A bard who sings of roads."}


@pytest.fixture()
def server(tmp_path, trained_cast_dir, tiny_base):
    running = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base)).start()
    yield running
    running.stop()


@pytest.fixture()
def client(server):
    with server.client() as c:
        yield c


def _kinds(events) -> list[str]:
    return [e.WhichOneof("event") for e in events]


def test_speak_streams_tokens_sentences_and_a_stored_final(client):
    events = list(client.speak("brann", "Can you mend my sword?", session_id="s1", sampling=SHORT))
    kinds = _kinds(events)
    assert kinds[0] == "started" and kinds[-1] == "final"
    tokens = [e.token for e in events if e.HasField("token")]
    assert sum(len(t.token_ids) for t in tokens) == 12 and kinds.count("final") == 1
    assert len(tokens[0].token_ids) == 1  # the first token at once, the rest in deltas
    started, final = events[0].started, events[-1].final
    assert (started.npc_id, started.session_id, started.npc_name) == (
        "brann",
        "s1",
        "Brann Ironhand",
    )
    assert final.finish_reason == pb.FINISH_REASON_LENGTH and final.stored
    assert final.completion_tokens == 12 and final.prompt_tokens > 0
    assert final.HasField("time_to_first_token_seconds")
    streamed = "".join(e.token.text for e in events if e.HasField("token"))
    assert final.text == streamed.strip()
    sentences = [e.sentence for e in events if e.HasField("sentence")]
    assert [s.index for s in sentences] == list(range(len(sentences))) and sentences
    assert " ".join(s.text for s in sentences).split() == final.text.split()
    elapsed = [e.elapsed_seconds for e in events]
    assert elapsed == sorted(elapsed)

    turns = client.get_session("s1").turns
    assert [(t.seq, t.speaker_kind, t.npc_id, t.speaker_name) for t in turns] == [
        (1, pb.SPEAKER_KIND_PLAYER, "", "Player"),
        (2, pb.SPEAKER_KIND_NPC, "brann", "Brann Ironhand"),
    ]
    assert turns[0].text == "Can you mend my sword?" and turns[1].text == final.text
    assert turns[0].request_id == turns[1].request_id == started.request_id


def test_a_session_with_two_npcs_and_the_player(server, client):
    seen = []
    engine = server.daemon.service.engine
    submit = engine.submit
    engine.submit = lambda request: seen.append(request) or submit(request)
    client.say("brann", "Morning, Brann!", session_id="tavern", sampling=SHORT)
    marla = client.say(
        "marla", "Marla, what does Brann say?", session_id="tavern", speaker_name="Aria",
        sampling=SHORT,
    )  # fmt: skip
    client.say("brann", "And you, Brann?", session_id="tavern", sampling=SHORT)

    session = client.get_session("tavern")
    assert [(t.npc_id or t.speaker_name) for t in session.turns] == [
        "Player", "brann", "Aria", "marla", "Player", "brann",
    ]  # fmt: skip
    assert session.turns[3].text == marla.text
    brann_line = session.turns[1].text
    # Marla hears Brann's line under his name; Brann hears his own line as his own.
    assert [(t.speaker, t.text, t.npc_id) for t in seen[1].turns] == [
        ("Player", "Morning, Brann!", ""),
        ("Brann Ironhand", brann_line, "brann"),
        ("Aria", "Marla, what does Brann say?", ""),
    ]
    assert (seen[2].turns[1].npc_id, seen[2].turns[3].npc_id) == ("brann", "marla")
    summary = client.list_sessions().sessions
    assert [(s.id, s.turn_count, list(s.npc_ids)) for s in summary] == [
        ("tavern", 6, ["brann", "marla"])
    ]


def test_cancel_by_request_id_and_by_disconnect_store_nothing(server, client):
    watcher = StreamWatcher(
        client.speak("pip", "Tell me everything", session_id="c1", sampling=LONG)
    )
    watcher.start()
    assert watcher.wait_tokens(2)
    client.cancel(watcher.request_id)
    watcher.join(30)
    assert watcher.final.finish_reason == pb.FINISH_REASON_CANCELLED and not watcher.final.stored
    with pytest.raises(NpcRuntimeError) as err:
        client.get_session("c1")
    assert err.value.code == "NOT_FOUND"

    events = client.speak("pip", "Again!", session_id="c2", sampling=LONG, request_id="mine-1")
    assert next(events).started.request_id == "mine-1"
    assert next(events).HasField("token")
    events.close()  # the client goes away mid-reply
    assert wait_until(lambda: client.status().active_streams == 0)
    assert wait_until(lambda: server.daemon.service.engine.stats().active == 0)
    assert client.list_sessions().sessions == []


def test_the_stream_interval_paces_token_events(tmp_path, trained_cast_dir, tiny_base):
    """serve's stream interval reaches the engine: at one second, a 200-token reply (tens
    of events at the 20 ms default) is its first token alone, then one event a second at
    most, the last with the end."""
    config = server_config(trained_cast_dir, tmp_path, tiny_base, stream_interval_seconds=1.0)
    running = ServerThread(config).start()
    paced = {**LONG, "max_tokens": 200}
    try:
        with running.client() as c:
            story = c.speak("brann", "Tell me a story", session_id="paced", sampling=paced)
            events = list(story)
    finally:
        running.stop()
    tokens = [e for e in events if e.HasField("token")]
    final = events[-1].final
    assert len(tokens[0].token.token_ids) == 1 and final.completion_tokens >= 100
    assert final.completion_tokens - sum(len(e.token.token_ids) for e in tokens) in (0, 1)
    assert len(tokens) <= 2 + int(events[-1].elapsed_seconds)
    with pytest.raises(ValueError, match="stream interval must be 0 to 1 seconds, not 1.5"):
        server_config(trained_cast_dir, tmp_path, tiny_base, stream_interval_seconds=1.5)


def test_register_npc_while_another_stream_runs(server, client, tmp_path):
    """The registration's slow parts (embedding, saving) are held until the running
    stream has produced more tokens: they can only finish if it was not stalled."""
    cast = server.daemon.service.cast
    watcher = StreamWatcher(
        client.speak("brann", "Tell me a story", session_id="long", sampling=LONG)
    )
    watcher.start()
    assert watcher.wait_tokens(1)
    embed, save = cast.embed_profile, cast.save
    cast.embed_profile = lambda profile: (watcher.gate(), embed(profile))[1]
    cast.save = lambda *a: (save(*a), watcher.gate())[0]
    before = watcher.tokens
    npc = client.register_npc(LYRA)
    after = watcher.tokens
    assert after - before >= 6 and not watcher.done
    assert npc.kind == pb.NPC_KIND_FUSED and npc.profile.name == LYRA["name"]
    weights = [b.weight for b in npc.blend]
    assert weights == sorted(weights, reverse=True) and abs(sum(weights) - 1) < 1e-6
    # The new NPC speaks at once, while the first stream is still running.
    reply = client.say("lyra", "Sing for us!", session_id="other", sampling=SHORT)
    assert reply.stored and not watcher.done
    assert watcher.wait_tokens(watcher.tokens + 3)
    client.cancel(watcher.request_id)
    watcher.join(30)
    assert watcher.error is None and watcher.kinds[-1] == "final"
    # Saved atomically to the cast folder.
    on_disk = load_cast(server.daemon.config.cast)
    assert on_disk.npc("lyra").blend == pytest.approx({b.block_id: b.weight for b in npc.blend})


def test_expand_npc_trains_while_others_speak(server, client, monkeypatch):
    profile, records = village_character("zef", 12)
    folder = server.daemon.config.cast
    old_blocks = {
        b["id"]: b["sha256"] for b in json.loads((folder / "cast.json").read_text())["blocks"]
    }
    watcher = StreamWatcher(
        client.speak("pip", "Where is Biscuit?", session_id="dog", sampling=LONG)
    )
    watcher.start()
    assert watcher.wait_tokens(1)
    checks = {}
    train = live_cast_module.train_blocks

    def gated(*args, on_step, **kw):
        def step(progress):
            on_step(progress)
            if progress.step == 1:  # mid-training: tokens flow, and the id is taken
                watcher.gate(5)
                checks["speak"] = _code(lambda: client.say("zef", "Hi", session_id="z"))
                checks["register"] = _code(lambda: client.register_npc({**LYRA, "id": "zef"}))
                checks["expand"] = _code(
                    lambda: list(client.expand_npc({**LYRA, "id": "x2"}, records))
                )
                checks["remove"] = _code(lambda: client.remove_npc("brann"))
                checks["status"] = client.status().training_npc_id

        return train(*args, on_step=step, **kw)

    monkeypatch.setattr(live_cast_module, "train_blocks", gated)
    before = watcher.tokens
    events = list(
        client.expand_npc(profile, records, {"epochs": 2, "batch_size": 4, "max_length": 128})
    )
    assert watcher.tokens - before >= 5 and not watcher.done
    assert checks == {
        "speak": "FAILED_PRECONDITION",
        "register": "ALREADY_EXISTS",
        "expand": "RESOURCE_EXHAUSTED",
        "remove": "FAILED_PRECONDITION",
        "status": "zef",
    }
    progress = [e.progress for e in events[:-1]]
    done = events[-1].done
    # 12 records, 2 epochs, one row an update (the default block batch): 24 steps
    assert [p.step for p in progress] == list(range(1, done.steps + 1)) and done.steps == 24
    assert all(p.total_steps == done.steps and p.loss > 0 for p in progress)
    assert progress[-1].eta_seconds == 0 and done.final_loss > 0
    assert done.npc.kind == pb.NPC_KIND_BLOCK and [b.block_id for b in done.npc.blend] == ["zef"]
    # It speaks at once; every old block stays bitwise unchanged (same content hash).
    assert client.say("zef", "What do you sell?", session_id="market", sampling=SHORT).stored
    manifest = json.loads((folder / "cast.json").read_text())
    assert {b["id"]: b["sha256"] for b in manifest["blocks"] if b["id"] != "zef"} == old_blocks
    assert "zef" in load_cast(folder).npc_ids() and client.status().training_npc_id == ""
    client.cancel(watcher.request_id)
    watcher.join(30)


def test_expand_cancelled_by_disconnect_leaves_nothing(server, client):
    profile, records = village_character("zef", 40)
    manifest = (server.daemon.config.cast / "cast.json").read_bytes()
    events = client.expand_npc(profile, records, {"epochs": 3, "batch_size": 2})
    assert next(events).HasField("progress")
    events.close()
    assert wait_until(lambda: client.status().training_npc_id == "")
    assert "zef" not in [n.profile.id for n in client.list_npcs()]
    assert "zef" not in server.daemon.service.cast.neeko.block_ids
    assert (server.daemon.config.cast / "cast.json").read_bytes() == manifest
    profile, records = village_character("old_nessa", 4)  # and the slot is free again
    done = list(client.expand_npc(profile, records, {"epochs": 1}))[-1].done
    assert done.steps == 4  # one row an update


def test_remove_npc_refuses_while_speaking_then_removes(server, client):
    client.register_npc(LYRA)
    watcher = StreamWatcher(client.speak("lyra", "Sing!", session_id="song", sampling=LONG))
    watcher.start()
    assert watcher.wait_tokens(1)
    assert _code(lambda: client.remove_npc("lyra")) == "FAILED_PRECONDITION"
    blend = [b.block_id for b in client.get_npc("lyra").blend]
    assert _code(lambda: client.remove_npc(blend[0])) == "FAILED_PRECONDITION"  # lyra blends it
    client.cancel(watcher.request_id)
    watcher.join(30)
    assert client.remove_npc("lyra").profile.id == "lyra"
    assert client.remove_npc("pip").kind == pb.NPC_KIND_BLOCK
    assert [n.profile.id for n in client.list_npcs()] == ["brann", "marla"]
    assert load_cast(server.daemon.config.cast).npc_ids() == ["brann", "marla"]
    assert _code(lambda: client.get_npc("pip")) == "NOT_FOUND"


def test_sessions_list_pages_and_reset(client):
    for sid in ("a", "b", "c"):
        client.say("marla", "Room for the night?", session_id=sid, sampling={"max_tokens": 2})
    first = client.list_sessions(page_size=2)
    assert [s.id for s in first.sessions] == ["a", "b"] and first.next_page_token == "b"
    second = client.list_sessions(page_size=2, page_token=first.next_page_token)
    assert [s.id for s in second.sessions] == ["c"] and second.next_page_token == ""
    assert client.reset_session("b") == 2
    assert [s.id for s in client.list_sessions().sessions] == ["a", "c"]
    assert len(client.get_session("a", max_turns=1).turns) == 1


def test_status_health_reflection_and_metrics(server, client):
    client.say("brann", "Hello", session_id="m", sampling={"max_tokens": 4, "seed": 2})
    status = client.status()
    assert (status.npc_count, status.block_count, status.active_streams) == (3, 3, 0)
    assert status.device == "cpu" and status.base_model == "model" and status.max_streams == 32
    assert status.cache_budget_bytes > 0

    with grpc.insecure_channel(server.address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        for name in ("", "npc_runtime.v1.NpcRuntime"):
            reply = check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "npc_runtime.v1.NpcRuntime" in services and "grpc.health.v1.Health" in services

    url = f"http://127.0.0.1:{server.daemon.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for line in (
        'npc_runtime_requests_total{code="OK",method="Speak"} 1.0',
        'npc_runtime_requests_total{code="OK",method="GetStatus"} 1.0',
        'npc_runtime_tokens_total{kind="completion"} 4.0',
        "npc_runtime_time_to_first_token_seconds_count 1.0",
        "npc_runtime_inter_token_seconds_count 3.0",
        "npc_runtime_active_streams 0.0",
        "npc_runtime_cache_hits_total",
        "npc_runtime_cache_misses_total",
    ):
        assert line in text, line


def test_async_client(server):
    async def scene() -> None:
        async with AsyncNpcClient(server.address) as c:
            events = [e async for e in c.speak("marla", "Hi!", session_id="a", sampling=SHORT)]
            assert _kinds(events)[0] == "started" and _kinds(events)[-1] == "final"
            assert (await c.say("brann", "Hi!", session_id="a", sampling=SHORT)).stored
            assert len((await c.get_session("a")).turns) == 4
            assert (await c.register_npc(LYRA)).kind == pb.NPC_KIND_FUSED
            assert [n.profile.id for n in await c.list_npcs()][-1] == "lyra"
            with pytest.raises(NpcRuntimeError) as err:
                await c.get_npc("nobody")
            assert err.value.code == "NOT_FOUND"
            assert (await c.status()).npc_count == 4

    asyncio.run(scene())


def _code(call) -> str:
    try:
        call()
    except NpcRuntimeError as exc:
        return exc.code
    return "OK"
