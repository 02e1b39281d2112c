"""The daemon on the real embedded SmolLM2 model, MiniLM encoder and demo village cast."""

from __future__ import annotations

import tomllib

import pytest
from server_harness import ServerThread, server_config
from server_harness_streams import StreamWatcher

from npc_runtime.demo import ASSETS
from npc_runtime.v1 import npc_runtime_pb2 as pb

pytestmark = pytest.mark.slow
GREEDY = {"temperature": 0, "max_tokens": 40}


@pytest.fixture(scope="module")
def village(tmp_path_factory):
    if not (ASSETS / "cast" / "cast.json").exists():
        pytest.skip("the demo village cast is not bundled yet")
    server = ServerThread(server_config(ASSETS / "cast", tmp_path_factory.mktemp("real"), None))
    yield server.start()
    server.stop()


@pytest.fixture()
def client(village):
    with village.client() as c:
        yield c


def test_real_model_streams_a_reply(client):
    status = client.status()
    assert status.base_model == "SmolLM2-135M-Instruct" and status.npc_count == 6
    line = "Can you mend my sword?"
    events = list(client.speak("brann", line, session_id="forge", sampling=GREEDY))
    final = events[-1].final
    tokens = [e.token.text for e in events if e.HasField("token")]
    streamed = sum(len(e.token.token_ids) for e in events if e.HasField("token"))
    # completion_tokens also counts the end-of-turn token, which streams no text.
    assert final.completion_tokens - streamed in (0, 1) and final.stored
    assert final.text == "".join(tokens).strip() and len(final.text.split()) >= 3
    assert any(e.HasField("sentence") for e in events)
    print(
        f"\nbrann: {final.text!r}\n  prompt {final.prompt_tokens} tokens, "
        f"ttft {final.time_to_first_token_seconds:.3f} s, "
        f"{final.completion_tokens / final.total_seconds:.1f} tokens/s"
    )


def test_real_model_scene_with_two_npcs_and_a_fused_newcomer(village, client):
    brann = client.say("brann", "Morning, Brann!", session_id="square", sampling=GREEDY)
    line = "Marla, is he always this grumpy?"
    marla = client.say("marla", line, session_id="square", sampling=GREEDY)
    assert marla.prompt_tokens > brann.prompt_tokens  # she hears the player and Brann
    # Lyra registers by fusion while Pip is speaking, then joins the same scene.
    watcher = StreamWatcher(
        client.speak("pip", "Pip, where's Biscuit?", session_id="lane", sampling=GREEDY)
    )
    watcher.start()
    assert watcher.wait_tokens(1)
    bard = tomllib.loads((ASSETS / "bard.toml").read_text())
    lyra = client.register_npc(bard)
    assert lyra.kind == pb.NPC_KIND_FUSED and len(lyra.blend) == 3
    reply = client.say("lyra", "A song, bard?", session_id="square", sampling=GREEDY)
    watcher.join(120)
    assert watcher.final.stored and reply.stored and reply.text
    turns = client.get_session("square").turns
    assert [t.npc_id for t in turns if t.npc_id] == ["brann", "marla", "lyra"]
    assert len(turns) == 6
