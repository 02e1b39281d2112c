"""Crowds through a real daemon on loopback (gRPC and the bridge). React: several NPCs
answer one player line, in one batch, their replies stored together in npc_ids order.
Converse: NPCs talk among themselves, turn after turn, each turn stored as it ends."""

from __future__ import annotations

import collections
import random

import pytest
from bridge_harness import Conn
from server_harness import ServerThread, server_config

from npc_runtime.client import NpcRuntimeError
from npc_runtime.v1 import npc_runtime_pb2 as pb

GREEDY = {"max_tokens": 8, "temperature": 0}
SEEDED = {"max_tokens": 12, "seed": 3}
CREW = ["brann", "marla", "pip"]
LINE = "A dragon was seen over the hills!"


@pytest.fixture()
def server(tmp_path, trained_cast_dir, tiny_base):
    running = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base)).start()
    yield running
    running.stop()


def _texts(client, session_id: str) -> list[tuple[str, str]]:
    return [(t.npc_id, t.text) for t in client.session_turns(session_id)]


def test_npcs_answer_one_line_together_each_in_its_own_voice(server):
    with server.client() as client:
        events = list(client.react(CREW, LINE, session_id="square", sampling=GREEDY))
        kinds = [e.WhichOneof("event") for e in events]
        assert kinds[:3] == ["started"] * 3 and [e.npc_id for e in events[:3]] == CREW
        assert kinds[-1] == "done" and events[-1].npc_id == ""
        tokens = [e for e in events if e.HasField("token")]
        assert {e.npc_id for e in tokens} == set(CREW)
        # One batch: every NPC has begun before any has finished.
        first = {n: min(i for i, e in enumerate(events) if e.npc_id == n and e.HasField("token"))
                 for n in CREW}  # fmt: skip
        last = {n: max(i for i, e in enumerate(events) if e.npc_id == n and e.HasField("token"))
                for n in CREW}  # fmt: skip
        assert max(first.values()) < min(last.values())
        replies = [e for e in events if e.HasField("reply")]
        assert [e.npc_id for e in replies] == CREW  # after every token, in npc_ids order
        assert kinds.index("reply") > max(last.values())
        for event in replies:
            streamed = "".join(e.token.text for e in tokens if e.npc_id == event.npc_id)
            assert event.reply.stored and event.reply.text == streamed.strip()
        done = events[-1].done
        assert done.stored and done.turns_stored == 1 + sum(bool(e.reply.text) for e in replies)
        turns = _texts(client, "square")
        assert turns[0] == ("", LINE)
        assert turns[1:] == [(e.npc_id, e.reply.text) for e in replies if e.reply.text]
        # Each reply is the one its NPC gives alone to the same line (greedy, float32).
        for event in replies:
            alone = client.say(event.npc_id, LINE, session_id=f"alone-{event.npc_id}",
                               sampling=GREEDY)  # fmt: skip
            assert alone.text == event.reply.text, event.npc_id


def test_with_hear_earlier_replies_each_npc_hears_those_before_it(server):
    with server.client() as client:
        together = client.react_all(["brann", "marla"], LINE, session_id="a", sampling=SEEDED)
        in_turn = client.react_all(
            ["brann", "marla"], LINE, session_id="b", sampling=SEEDED, hear_earlier_replies=True
        )
    assert in_turn["brann"].text == together["brann"].text  # the first hears the same
    assert together["brann"].text, "the first NPC said nothing: nothing to hear"
    assert in_turn["marla"].prompt_tokens > together["marla"].prompt_tokens


def test_a_fused_npc_reacts_beside_block_npcs(server):
    with server.client() as client:
        client.register_npc({"id": "lyra", "name": "Lyra", "profile": "A wandering bard."})
        replies = client.react_all(["lyra", "pip"], LINE, session_id="s", sampling=GREEDY)
        assert list(replies) == ["lyra", "pip"] and all(r.stored for r in replies.values())


def test_a_cancelled_reaction_stores_nothing(server):
    with server.client() as client:
        client.say("pip", "Hello.", session_id="tavern", sampling=GREEDY)
        before = _texts(client, "tavern")
        events = []
        stream = client.react(CREW, LINE, session_id="tavern", request_id="crowd1",
                              sampling={"max_tokens": 200})  # fmt: skip
        for event in stream:
            events.append(event)
            if event.HasField("token"):
                client.cancel("crowd1")
                break
        events += list(stream)
        replies = [e.reply for e in events if e.HasField("reply")]
        assert len(replies) == 3 and not any(r.stored for r in replies)
        # Cancelled after the first token of 200: the call's replies in flight end CANCELLED.
        assert pb.FINISH_REASON_CANCELLED in {r.finish_reason for r in replies}
        assert events[-1].HasField("done") and not events[-1].done.stored
        assert _texts(client, "tavern") == before


@pytest.mark.parametrize(
    ("npc_ids", "code", "words"),
    [
        ([], "INVALID_ARGUMENT", "1 to 8"),
        (["brann"] * 2, "INVALID_ARGUMENT", "twice"),
        ([f"n{i}" for i in range(9)], "INVALID_ARGUMENT", "1 to 8"),
        (["brann", "nobody"], "NOT_FOUND", "nobody"),
        (["brann", "bad id!"], "INVALID_ARGUMENT", "npc_ids[1]"),
    ],
)
def test_bad_crowds_are_refused_and_nothing_is_stored(server, npc_ids, code, words):
    with server.client() as client, pytest.raises(NpcRuntimeError) as refused:
        list(client.react(npc_ids, LINE, session_id="bad"))
    assert refused.value.code == code and words in refused.value.message
    with server.client() as client, pytest.raises(NpcRuntimeError) as missing:
        client.get_session("bad")
    assert missing.value.code == "NOT_FOUND"


def test_a_player_named_as_one_of_the_crowd_is_refused(server):
    with server.client() as client, pytest.raises(NpcRuntimeError) as refused:
        list(client.react(["marla", "pip"], LINE, session_id="s", speaker_name="Brann"))
    assert refused.value.code == "INVALID_ARGUMENT"


def test_one_reply_at_a_time_per_session_holds_for_crowds(server):
    with server.client() as client:
        stream = client.speak("brann", LINE, session_id="busy", sampling={"max_tokens": 200})
        next(stream)  # Started: the session is busy now
        with server.client() as other, pytest.raises(NpcRuntimeError) as refused:
            list(other.react(["marla"], LINE, session_id="busy"))
        assert refused.value.code == "FAILED_PRECONDITION"
        stream.close()


def test_a_reaction_over_the_bridge(server):
    with Conn(server.bridge_url) as conn:
        request = {"session_id": "b", "text": LINE, "npc_ids": ["pip", "brann"],
                   "sampling": {"max_tokens": 4, "temperature": 0}}  # fmt: skip
        frames = conn.call("React", request)
    assert frames[-1] == {"id": "c", "done": True}
    assert frames[-2]["event"]["done"]["stored"] is True
    assert all(f.get("error") is None for f in frames)
    replies = [f["event"] for f in frames if "reply" in f.get("event", {})]
    assert [r["npc_id"] for r in replies] == ["pip", "brann"]
    assert sum(1 for f in frames if f.get("done")) == 1


def test_any_list_of_npc_ids_is_served_in_order_or_refused_whole(server):
    """Fuzzed crowds: subsets, repeats, unknown and malformed ids, any length. Each call
    is refused with a typed error and nothing stored, or stores the line and the replies
    in the order asked."""
    rng = random.Random(17)
    pool = CREW + ["nobody", "bad id", "", "x" * 65, "Pip", "brann\n"]
    outcomes = collections.Counter()
    with server.client() as client:
        for i in range(40):
            if i % 2:  # a valid crowd, in any order
                npc_ids = rng.sample(CREW, rng.randint(1, 3))
            else:
                npc_ids = [rng.choice(pool) for _ in range(rng.choice([0, 1, 2, 3, 4, 9]))]
            session = f"fuzz{i}"
            try:
                replies = client.react_all(npc_ids, LINE, session_id=session,
                                           sampling={"max_tokens": 2, "seed": i})  # fmt: skip
            except NpcRuntimeError as refused:
                assert refused.code in ("INVALID_ARGUMENT", "NOT_FOUND"), refused
                with pytest.raises(NpcRuntimeError):
                    client.get_session(session)
                outcomes[refused.code] += 1
                continue
            assert list(replies) == npc_ids and len(set(npc_ids)) == len(npc_ids)
            assert set(npc_ids) <= set(CREW)
            stored = [t.npc_id for t in client.session_turns(session)]
            assert stored == [""] + [n for n in npc_ids if replies[n].text]
            outcomes["served"] += 1
    assert outcomes["served"] >= 15 and outcomes["INVALID_ARGUMENT"] >= 10, outcomes


SCENE = "The smith and the innkeeper argue about the price of nails."


def test_npcs_talk_among_themselves_turn_after_turn(server):
    with server.client() as client:
        events = list(client.converse(["brann", "marla"], SCENE, turns=4, session_id="inn",
                                      sampling=SEEDED))  # fmt: skip
        starts = [(e.turn, e.npc_id) for e in events if e.HasField("started")]
        assert starts == [(0, "brann"), (1, "marla"), (2, "brann"), (3, "marla")]
        replies = [e for e in events if e.HasField("reply")]
        assert [(e.turn, e.npc_id) for e in replies] == starts
        assert all(e.reply.stored for e in replies)
        for e in replies:
            streamed = "".join(
                t.token.text for t in events if t.HasField("token") and t.turn == e.turn
            )
            assert e.reply.text == streamed.strip()
        # Each turn hears the ones before: the prompt grows turn after turn.
        prompts = [e.reply.prompt_tokens for e in replies]
        assert prompts == sorted(prompts) and prompts[-1] > prompts[0]
        done = events[-1]
        assert done.HasField("done") and not done.done.cancelled
        stored = _texts(client, "inn")
        assert stored == [("", SCENE)] + [(e.npc_id, e.reply.text) for e in replies if e.reply.text]
        assert done.done.turns_stored == len(stored)


def test_a_scene_stores_each_turn_as_it_ends_and_a_cancel_keeps_them(server):
    with server.client() as client, server.client() as watcher:
        options = {"session_id": "square", "request_id": "scene1", "turns": 6}
        sampling = {"max_tokens": 12, "seed": 5}
        stream = client.converse(["pip", "brann", "marla"], SCENE, sampling=sampling, **options)
        first = None
        events = []
        for event in stream:
            events.append(event)
            if event.HasField("reply"):
                first = event
                # Stored already, while the scene goes on.
                assert _texts(watcher, "square")[0] == ("", SCENE)
                client.cancel("scene1")
                break
        events += list(stream)
        done = events[-1]
        assert done.HasField("done") and done.done.cancelled
        spoken = [e for e in events if e.HasField("reply") and e.reply.stored]
        assert spoken[0] is first and len(spoken) < 6
        stored = _texts(watcher, "square")
        assert stored == [("", SCENE)] + [(e.npc_id, e.reply.text) for e in spoken if e.reply.text]
        assert done.done.turns_stored == len(stored)


@pytest.mark.parametrize(
    ("npc_ids", "turns", "words"),
    [
        (["brann"], 2, "2 to 8"),
        (["brann", "pip", "brann"], 2, "twice"),
        (["brann", "pip"], 33, "at most 32"),
    ],
)
def test_bad_scenes_are_refused_and_nothing_is_stored(server, npc_ids, turns, words):
    with server.client() as client:
        with pytest.raises(NpcRuntimeError) as refused:
            list(client.converse(npc_ids, SCENE, turns=turns, session_id="bad"))
        assert refused.value.code == "INVALID_ARGUMENT" and words in refused.value.message
        with pytest.raises(NpcRuntimeError):
            client.get_session("bad")


def test_a_scene_over_the_bridge(server):
    with Conn(server.bridge_url) as conn:
        request = {"session_id": "b", "text": SCENE, "npc_ids": ["pip", "brann"], "turns": 2,
                   "sampling": {"max_tokens": 4, "seed": 1}}  # fmt: skip
        frames = conn.call("Converse", request)
    assert frames[-1] == {"id": "c", "done": True}
    assert frames[-2]["event"]["done"]["cancelled"] is False
    replies = [f["event"] for f in frames if "reply" in f.get("event", {})]
    assert [(r["turn"], r["npc_id"]) for r in replies] == [(0, "pip"), (1, "brann")]
