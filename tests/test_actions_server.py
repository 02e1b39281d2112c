"""Actions and structured replies through a real daemon on loopback (gRPC and the bridge):
the events, what the session stores, and 200 replies of block and fused NPCs in shared
batches, every action checked against its schema by jsonschema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from bridge_harness import Conn
from server_harness import ServerThread, server_config

from npc_runtime.client import NpcRuntimeError

VILLAGE = json.loads((Path(__file__).parents[1] / "examples/village/actions.json").read_text())
GIVE, OFFER, WAVE = VILLAGE
SCHEMAS = {a["name"]: a.get("parameters", {}) for a in (GIVE, WAVE, OFFER)}
LINE = "I lost my way in the woods. Can you help me?"
SHORT = {"max_tokens": 4, "temperature": 1.0}


@pytest.fixture()
def server(tmp_path, trained_cast_dir, tiny_base):
    running = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base)).start()
    yield running
    running.stop()


def _valid(action) -> None:
    schema = SCHEMAS[action.name]
    arguments = json.loads(action.arguments_json)
    jsonschema.validate(arguments, schema) if schema else None
    assert schema or arguments == {}


def test_speak_streams_actions_after_the_speech_and_stores_them(server):
    with server.client() as client:
        events = list(
            client.speak(
                "brann",
                LINE,
                session_id="road",
                sampling=SHORT | {"seed": 1},
                actions=[GIVE, WAVE],
                action_choice="give_item",
            )  # fmt: skip
        )
        kinds = [e.WhichOneof("event") for e in events]
        actions = [e.action for e in events if e.HasField("action")]
        assert actions and all(a.name == "give_item" for a in actions)
        assert [a.index for a in actions] == list(range(len(actions)))
        first_action = kinds.index("action")
        assert "token" not in kinds[first_action:] and kinds[-1] == "final"
        final = events[-1].final
        assert final.stored and list(final.actions) == actions
        for action in actions:
            _valid(action)
        assert "Actions:" not in final.text
        npc_turn = list(client.session_turns("road"))[-1]
        assert npc_turn.npc_id == "brann" and list(npc_turn.actions) == actions
        # The next reply hears what the NPC did: the session goes on without actions.
        assert client.say("brann", "Thank you!", session_id="road", sampling=SHORT).stored


def test_two_hundred_replies_in_shared_batches_all_validate(server):
    """Block NPCs and a fused one, three action sets, React batches of four."""
    sets = [([GIVE, WAVE], "required"), ([OFFER], "required"), ([GIVE, WAVE, OFFER], "auto")]
    with server.client() as client:
        client.register_npc({"id": "tess", "name": "Tess", "profile": "A loud cook."})
        crew = ["brann", "marla", "pip", "tess"]
        emitted = replies = 0
        for n in range(50):
            actions, choice = sets[n % 3]
            events = list(
                client.react(
                    crew,
                    LINE,
                    session_id=f"s{n % 5}",
                    sampling=SHORT | {"seed": n},
                    actions=actions,
                    action_choice=choice,
                )  # fmt: skip
            )
            assert events[-1].done.stored
            for event in events:
                if event.HasField("action"):
                    assert event.action.name in {a["name"] for a in actions}
                    _valid(event.action)
                    emitted += 1
                if event.HasField("reply"):
                    replies += 1
                    required = choice == "required" and event.reply.finish_reason == 1
                    assert len(event.reply.actions) >= required
    assert replies == 200 and emitted >= 100


def test_a_structured_reply_over_the_bridge(server):
    schema = {
        "type": "object",
        "properties": {
            "item": {"type": "string", "maxLength": 20},
            "price": {"type": "integer", "minimum": 0, "maximum": 999},
        },
        "required": ["item", "price"],
        "additionalProperties": False,
    }
    with Conn(server.bridge_url) as conn:
        request = {"npc_id": "marla", "session_id": "shop", "text": "What does bread cost?",
                   "sampling": {"max_tokens": 48, "seed": 2},
                   "response_json_schema": json.dumps(schema)}  # fmt: skip
        frames = conn.call("Speak", request)
    events = [f["event"] for f in frames if "event" in f]
    final = events[-1]["final"]
    assert frames[-1] == {"id": "c", "done": True}
    assert final["finish_reason"] == "FINISH_REASON_STOP"  # complete within its tokens
    jsonschema.validate(json.loads(final["text"]), schema)
    tokens = "".join(e["token"].get("text", "") for e in events if "token" in e)
    assert tokens.strip() == final["text"]


def test_actions_over_the_bridge(server):
    with Conn(server.bridge_url) as conn:
        request = {"npc_id": "pip", "session_id": "b", "text": LINE, "sampling": SHORT,
                   "actions": [{"name": "wave", "description": "wave"}],
                   "action_choice": "required"}  # fmt: skip
        frames = conn.call("Speak", request)
    events = [f["event"] for f in frames if "event" in f]
    actions = [e["action"] for e in events if "action" in e]
    assert (
        actions and actions[0]["name"] == "wave" and json.loads(actions[0]["arguments_json"]) == {}
    )
    assert events[-1]["final"]["actions"] == actions


BAD = [
    {"actions": [{"name": "give item"}]},
    {"actions": [WAVE, WAVE]},
    {"actions": [{"name": f"a{i}"} for i in range(17)]},
    {"actions": [{"name": "a", "parameters": "{not json"}]},
    {"actions": [{"name": "a", "parameters": {"type": "array"}}]},
    {"actions": [{"name": "a", "parameters": {"type": "object", "x" * 20000: 1}}]},
    {"actions": [WAVE], "action_choice": "dance"},
    {"action_choice": "required"},
    {"response_schema": {"type": "nonsense"}},
    {"response_schema": "not json"},
    {"response_schema": {"type": "object"}, "actions": [WAVE]},
    {"response_schema": {"type": "object"}, "sampling": {"stop": ["."]}},
]


@pytest.mark.parametrize("fields", BAD)
def test_bad_actions_and_schemas_are_refused_and_nothing_is_stored(server, fields):
    with server.client() as client:
        assert client.say("pip", "Hello", session_id="kept", sampling=SHORT).stored
        before = list(client.session_turns("kept"))
        for call in (client.say, lambda *a, **k: client.react_all(["pip", "brann"], *a[1:], **k)):
            with pytest.raises(NpcRuntimeError) as err:
                call("pip", "Hello again", session_id="kept", **fields)
            assert err.value.code == "INVALID_ARGUMENT"
        assert list(client.session_turns("kept")) == before
        assert client.status().active_streams == 0


SMITH = {
    "id": "hilde",
    "name": "Hilde",
    "profile": "A smith who sells blades.",
    "actions": [{"name": "sell_item", "description": "sell the player a blade",
                 "parameters": GIVE["parameters"]}],
}  # fmt: skip
COOK = {
    "id": "tova",
    "name": "Tova",
    "profile": "A cook who waves at everyone.",
    "actions": [{"name": "wave", "description": "wave at the player"}],
}


def test_npcs_declare_their_own_actions(server, tmp_path):
    """Actions on a profile: kept with the cast, shown by GetNpc, joined with a call's,
    and each NPC of a React batch acts from its own set."""
    with server.client() as client:
        client.register_npc(SMITH)
        client.register_npc(COOK)
        (spec,) = client.get_npc("hilde").profile.actions
        assert spec.name == "sell_item" and json.loads(spec.parameters_json_schema)
        final = client.say(
            "hilde", LINE, session_id="own", sampling=SHORT, action_choice="sell_item"
        )
        assert final.actions and {a.name for a in final.actions} == {"sell_item"}
        replies = client.react_all(["hilde", "tova"], LINE, session_id="own2", sampling=SHORT,
                                   action_choice="required")  # fmt: skip
        assert {a.name for a in replies["hilde"].actions} <= {"sell_item"}
        assert {a.name for a in replies["tova"].actions} <= {"wave"}
        assert replies["hilde"].actions and replies["tova"].actions
        # A call's action joins the NPC's own; one of the same name replaces it.
        final = client.say("tova", LINE, session_id="own3", sampling=SHORT,
                           actions=[GIVE], action_choice="give_item")  # fmt: skip
        assert {a.name for a in final.actions} == {"give_item"}
        for action in final.actions:
            _valid(action)
    cast = json.loads((server.daemon.config.cast / "cast.json").read_text())
    (hilde,) = [n for n in cast["npcs"] if n["id"] == "hilde"]
    assert hilde["actions"][0]["name"] == "sell_item"


@pytest.mark.parametrize(
    "actions",
    [
        [{"name": "bad name"}],
        [{"name": "a", "parameters_json_schema": "{no"}],
        [{"name": "a", "parameters_json_schema": '{"type": "array"}'}],
        [{"name": "a"}, {"name": "a"}],
    ],
)
def test_a_profile_with_bad_actions_is_not_registered(server, actions):
    with server.client() as client:
        with pytest.raises(NpcRuntimeError) as err:
            client.register_npc({"id": "nope", "name": "Nope", "profile": "x", "actions": actions})
        assert err.value.code == "INVALID_ARGUMENT"
        assert "nope" not in {n.profile.id for n in client.list_npcs()}
