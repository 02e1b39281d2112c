"""Speak through a real daemon with speaker names and player lines drawn from the whole
of Unicode (weighted towards line breaks, format characters, colons, chat markers and
the cast's own names): every request is either refused with INVALID_ARGUMENT or served,
and the prompt the engine builds always has the turn structure the stored ids say."""

from __future__ import annotations

from collections import Counter

import grpc
import pytest
from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st
from server_harness import ServerThread, server_config
from test_prompt_structure import TEXTS

from npc_runtime.neeko.prompt import scene_messages
from npc_runtime.v1 import npc_runtime_pb2 as pb
from npc_runtime.v1.npc_runtime_pb2_grpc import NpcRuntimeStub

NPCS = ["brann", "marla", "pip"]
OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, trained_cast_dir, tiny_base):
    tmp = tmp_path_factory.mktemp("fuzz-speak")
    running = ServerThread(server_config(trained_cast_dir, tmp, tiny_base)).start()
    seen = []
    engine = running.daemon.service.engine
    submit = engine.submit
    engine.submit = lambda request: seen.append(request) or submit(request)
    with grpc.insecure_channel(running.address) as channel:
        yield running, NpcRuntimeStub(channel), seen
    engine.submit = submit
    running.stop()


def roles_from_ids(npc_id: str, turns) -> list[str]:
    roles: list[str] = []
    for turn in turns:
        role = "assistant" if turn.npc_id == npc_id else "user"
        if role == "assistant" or not roles or roles[-1] != "user":
            roles.append(role)
    return roles + ([] if roles and roles[-1] == "user" else ["user"])


@fuzz(120)
@given(
    speaker=st.none() | TEXTS,
    text=TEXTS,
    npc=st.sampled_from(NPCS),
    session=st.sampled_from(["f1", "f2", "f3"]),
)
def test_any_speaker_and_line_keep_the_prompt_structure(daemon, speaker, text, npc, session):
    server, stub, seen = daemon
    request = pb.SpeakRequest(
        npc_id=npc, session_id=session, text=text, sampling=pb.Sampling(max_tokens=2, seed=1)
    )
    if speaker is not None:
        request.speaker_name = speaker
    before = len(seen)
    try:
        events = list(stub.Speak(request, timeout=60))
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
        assert len(seen) == before
        OUTCOMES["refused"] += 1
        return
    OUTCOMES["served"] += 1
    assert events[-1].HasField("final") and len(seen) == before + 1
    asked = seen[-1]
    line = asked.turns[-1]
    assert line.npc_id == "" and line.text == text.strip()  # a player's line, whatever it says
    profile = server.daemon.service.cast.npc(npc).profile
    messages = scene_messages(profile, asked.turns)
    assert [m["role"] for m in messages[1:]] == roles_from_ids(npc, asked.turns)
    # Every user message has exactly one line per turn it merges.
    merged = [t for t in asked.turns if t.npc_id != npc]
    lines = sum(len(m["content"].splitlines()) for m in messages[1:] if m["role"] == "user")
    assert lines == len(merged)


def test_the_fuzzer_saw_both_outcomes():
    """Runs after the fuzzer: its examples were neither all refused nor all served."""
    assert OUTCOMES["served"] >= 20 and OUTCOMES["refused"] >= 20, OUTCOMES
