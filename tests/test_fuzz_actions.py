"""Speak with actions drawn at random through a real daemon: names from all of Unicode,
parameter schemas built from JSON Schema's own keywords with values of any JSON type,
any action choice. Every request is refused with INVALID_ARGUMENT and stores nothing, or
is served and every action it emits validates against its schema (checked by
jsonschema)."""

from __future__ import annotations

import json
from collections import Counter

import grpc
import jsonschema
import pytest
from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st
from server_harness import ServerThread, server_config

from npc_runtime.v1 import npc_runtime_pb2 as pb
from npc_runtime.v1.npc_runtime_pb2_grpc import NpcRuntimeStub

OUTCOMES: Counter[str] = Counter()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
SCALAR = st.sampled_from(
    [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "number"}]
)
WORDS = st.lists(st.text(max_size=6), min_size=1, max_size=3)
STRING = {"enum": WORDS, "maxLength": st.integers(-2, 12)}
INTEGER = {"minimum": st.integers(-5, 5), "maximum": st.integers(-5, 5)}
PROPERTY = (
    SCALAR
    | st.fixed_dictionaries({"type": st.just("string")}, optional=STRING)
    | st.fixed_dictionaries({"type": st.just("integer")}, optional=INTEGER)
)
OBJECT = st.builds(
    lambda props, required, extra: {
        "type": "object",
        "properties": props,
        "required": [k for k in required if k in props] if extra is None else required,
        **({} if extra is None else {"additionalProperties": extra}),
    },
    st.dictionaries(st.text(min_size=1, max_size=6), PROPERTY, max_size=3),
    st.lists(st.text(min_size=1, max_size=6), max_size=2),
    st.none() | st.booleans(),
)
KEYWORDS = st.sampled_from(["type", "properties", "required", "enum", "items", "minimum", "const"])
# Mostly declarations that may be served, so both outcomes are exercised.
BAD_SCHEMA = st.dictionaries(KEYWORDS, JSON, max_size=3).map(json.dumps) | st.text(max_size=20)
SCHEMA = st.integers(0, 4).flatmap(
    lambda n: BAD_SCHEMA if n == 0 else st.just("") if n == 1 else OBJECT.map(json.dumps)
)
BAD_NAME = st.sampled_from(["x" * 65, "9lives", "a b", "", "Ïx"]) | st.text(max_size=8)
GOOD_NAME = st.sampled_from(["give_item", "wave", "trade", "Tr4de_", "x" * 64])
NAME = st.integers(0, 5).flatmap(lambda n: BAD_NAME if n == 0 else GOOD_NAME)
ACTION = st.builds(
    lambda name, description, schema: pb.ActionSpec(
        name=name, description=description, parameters_json_schema=schema
    ),
    NAME,
    st.text(max_size=30),
    SCHEMA,
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, trained_cast_dir, tiny_base):
    tmp = tmp_path_factory.mktemp("fuzz-actions")
    running = ServerThread(server_config(trained_cast_dir, tmp, tiny_base)).start()
    with grpc.insecure_channel(running.address) as channel:
        yield NpcRuntimeStub(channel)
    running.stop()


def _turns(stub, session: str) -> int:
    try:
        return stub.GetSession(pb.GetSessionRequest(session_id=session)).turn_count
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        return 0


@fuzz(60)
@given(
    actions=st.lists(ACTION, max_size=3, unique_by=lambda a: a.name) | st.lists(ACTION, max_size=4),
    choice=st.sampled_from(["", "auto", "none", "required", "give_item", "dance"]),
    seed=st.integers(0, 2**32),
)
def test_any_actions_are_refused_or_every_emitted_one_validates(daemon, actions, choice, seed):
    stub = daemon
    before = _turns(stub, "fz")
    request = pb.SpeakRequest(
        npc_id="pip", session_id="fz", text="Help me, please.", action_choice=choice,
        sampling=pb.Sampling(max_tokens=3, seed=seed), actions=actions,
    )  # fmt: skip
    try:
        events = list(stub.Speak(request, timeout=120))
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
        assert _turns(stub, "fz") == before
        OUTCOMES["refused"] += 1
        return
    OUTCOMES["served"] += 1
    final = events[-1].final
    assert final.stored
    specs = {a.name: a.parameters_json_schema for a in actions}
    emitted = [e.action for e in events if e.HasField("action")]
    assert emitted == list(final.actions)
    for action in emitted:
        assert action.name in specs and (choice not in specs or action.name == choice)
        arguments = json.loads(action.arguments_json)
        schema = json.loads(specs[action.name]) if specs[action.name] else {"type": "object"}
        jsonschema.validate(arguments, schema)
        OUTCOMES["actions"] += 1


def test_the_fuzzer_saw_every_outcome():
    """Runs after the fuzzer: some requests were refused, some served with actions."""
    assert OUTCOMES["served"] >= 10 and OUTCOMES["refused"] >= 10, OUTCOMES
    assert OUTCOMES["actions"] >= 5, OUTCOMES
