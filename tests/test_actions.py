"""Actions and structured replies in the engine: every emitted call validates against its
schema (checked by jsonschema, not by the grammar that made it), rows with different
action sets share batches, and bad declarations are refused before anything runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
import pytest

from npc_runtime import load_cast
from npc_runtime.engine import Engine, EngineConfig, EngineError, FinalResult, GenerationRequest
from npc_runtime.engine.actions import ACTIONS_MARKER, MAX_ACTIONS, MAX_CALLS
from npc_runtime.engine.api import Action, SamplingParams, TokenDelta
from npc_runtime.neeko.profile import profile_from_dict
from npc_runtime.neeko.prompt import Turn

SCENE = (Turn("Player", "I need something for the road. Can you help?"),)
VILLAGE = json.loads((Path(__file__).parents[1] / "examples/village/actions.json").read_text())
GIVE, OFFER, WAVE = (
    Action(a["name"], a["description"], json.dumps(a["parameters"]) if "parameters" in a else "")
    for a in VILLAGE
)
ACTION_SETS = [(GIVE, WAVE), (OFFER,), (GIVE, OFFER, WAVE)]
QUEST = json.dumps(
    {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 40},
            "reward": {"type": "integer", "minimum": 1, "maximum": 100},
            "urgent": {"type": "boolean"},
        },
        "required": ["title", "reward", "urgent"],
        "additionalProperties": False,
    }
)


@pytest.fixture(scope="module")
def cast(trained_cast_dir):
    cast = load_cast(trained_cast_dir)
    cast.fuse(profile_from_dict({"id": "tess", "name": "Tess", "profile": "A loud cook."}))
    return cast


def run(cast, body, **config):
    async def main():
        async with Engine(cast, EngineConfig(**config)) as engine:
            return await body(engine)

    return asyncio.run(main())


async def reply(engine: Engine, req: GenerationRequest) -> FinalResult:
    items = [item async for item in engine.submit(req)]
    assert all(isinstance(i, TokenDelta) for i in items[:-1])
    assert "".join(i.text for i in items[:-1]) == items[-1].text
    return items[-1]


def check_calls(result: FinalResult, actions) -> int:
    schemas = {a.name: json.loads(a.parameters) if a.parameters else {} for a in actions}
    assert len(result.actions) <= MAX_CALLS
    for call in result.actions:
        assert call.name in schemas
        if schemas[call.name]:
            jsonschema.validate(json.loads(call.arguments), schemas[call.name])
        else:
            assert json.loads(call.arguments) == {}
    assert ACTIONS_MARKER.strip() not in result.text  # the tail is not speech
    return len(result.actions)


def test_required_actions_validate_in_mixed_batches(cast):
    """Block and fused NPCs, three action sets, sampled: every call is valid."""
    npcs = ["brann", "marla", "pip", "tess"]

    async def body(engine):
        reqs = [
            GenerationRequest(
                f"r{n}",
                npcs[n % 4],
                SCENE,
                SamplingParams(max_tokens=6, temperature=1.0, seed=n),
                actions=ACTION_SETS[n % 3],
                action_choice="required",
            )
            for n in range(24)
        ]
        results = await asyncio.gather(*(reply(engine, r) for r in reqs))
        return reqs, results, engine.scheduler.grammars.compiles

    reqs, results, compiles = run(cast, body)
    assert compiles == len(ACTION_SETS)  # each grammar compiled once, its rows copy it
    assert sum(r.finish_reason == "stop" for r in results) >= 12  # not vacuous (16 of 24 now)
    for req, result in zip(reqs, results):
        if result.finish_reason == "stop":  # a tail cut by its token limit carries nothing
            assert check_calls(result, req.actions) >= 1


def test_a_named_choice_forces_that_action(cast):
    async def body(engine):
        req = GenerationRequest(
            "g", "brann", SCENE, SamplingParams(max_tokens=4, temperature=0),
            actions=(WAVE, GIVE), action_choice="give_item",
        )  # fmt: skip
        return await reply(engine, req)

    result = run(cast, body)
    assert result.finish_reason == "stop"
    assert result.actions and all(c.name == "give_item" for c in result.actions)
    check_calls(result, (WAVE, GIVE))


def test_each_row_with_actions_matches_the_request_alone(cast):
    """Greedy rows with grammars in one batch give what each gives alone."""

    def req(rid, npc, n):
        return GenerationRequest(
            rid, npc, SCENE, SamplingParams(max_tokens=3 + n, temperature=0),
            actions=ACTION_SETS[n % 3], action_choice="required" if n % 2 else "auto",
        )  # fmt: skip

    npcs = ["brann", "marla", "pip", "tess"]

    async def body(engine):
        alone = [await reply(engine, req(f"a{n}", npc, n)) for n, npc in enumerate(npcs)]
        together = await asyncio.gather(
            *(reply(engine, req(f"b{n}", npc, n)) for n, npc in enumerate(npcs))
        )
        return alone, together

    alone, together = run(cast, body, cache_budget_bytes=0)
    for a, b in zip(alone, together):
        assert (a.text, a.actions, a.completion_tokens) == (b.text, b.actions, b.completion_tokens)


def test_no_actions_and_choice_none_leave_the_reply_as_before(cast):
    async def body(engine):
        plain = GenerationRequest("p", "pip", SCENE, SamplingParams(max_tokens=8, temperature=0))
        none = GenerationRequest(
            "n", "pip", SCENE, SamplingParams(max_tokens=8, temperature=0),
            actions=(GIVE,), action_choice="none",
        )  # fmt: skip
        return await reply(engine, plain), await reply(engine, none)

    plain, none = run(cast, body)
    assert (plain.text, plain.completion_tokens) == (none.text, none.completion_tokens)
    assert plain.actions == none.actions == ()


def test_a_structured_reply_is_one_valid_json_value(cast):
    async def body(engine):
        reqs = [
            GenerationRequest(
                f"q{n}",
                ["brann", "tess"][n % 2],
                SCENE,
                SamplingParams(max_tokens=64, temperature=1.0, seed=n),
                response_schema=QUEST,
            )  # fmt: skip
            for n in range(6)
        ]
        return await asyncio.gather(*(reply(engine, r) for r in reqs))

    for result in run(cast, body):
        assert result.finish_reason == "stop"  # the schema's bounds fit in max_tokens
        jsonschema.validate(json.loads(result.text), json.loads(QUEST))
        assert result.actions == ()


BAD = [
    ({"actions": (Action("1st"),)}, "invalid action name"),
    ({"actions": (WAVE, WAVE)}, "declared twice"),
    ({"actions": tuple(Action(f"a{i}") for i in range(MAX_ACTIONS + 1))}, "at most"),
    ({"actions": (Action("a", parameters="{nope"),)}, "not JSON"),
    ({"actions": (Action("a", parameters="[1]"),)}, "JSON Schema object"),
    ({"actions": (Action("a", parameters='{"type": "string"}'),)}, '"type": "object"'),
    ({"actions": (Action("a", parameters='{"type": "object", "minProperties": "x"}'),)}, ""),
    ({"actions": (Action("a", "x" * 2000),)}, "description"),
    ({"actions": (WAVE,), "action_choice": "dance"}, "action_choice"),
    ({"action_choice": "required"}, "needs declared actions"),
    ({"response_schema": '{"type": "frob"}'}, "schema cannot be used"),
    ({"response_schema": "[]"}, "JSON Schema object"),
    ({"response_schema": QUEST, "actions": (WAVE,)}, "no actions"),
]


@pytest.mark.parametrize("fields,message", BAD)
def test_bad_declarations_are_refused_before_anything_runs(cast, fields, message):
    async def body(engine):
        with pytest.raises(EngineError) as err:
            engine.submit(GenerationRequest("x", "pip", SCENE, **fields))
        return err.value, engine.stats()

    error, stats = run(cast, body)
    assert error.code == "INVALID_ARGUMENT" and message in str(error)
    assert stats.in_flight == 0
