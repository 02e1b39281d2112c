"""The bundled village cast on the real embedded SmolLM2 model and MiniLM encoder."""

from dataclasses import replace

import pytest
from conftest import VILLAGE

from npc_runtime import load_cast
from npc_runtime.demo import ASSETS
from npc_runtime.evaluation.perplexity import mean_perplexity, score_samples
from npc_runtime.neeko.data import read_profiles, read_samples
from npc_runtime.neeko.encoder import RoleEncoder
from npc_runtime.neeko.profile import load_profile
from npc_runtime.neeko.prompt import Turn
from npc_runtime.speak import GREEDY, reply

VILLAGERS = ["brann", "marla", "captain_roe", "old_nessa", "zef", "pip"]


@pytest.fixture(scope="module")
def village():
    return load_cast(ASSETS / "cast")


def test_bundled_cast_loads_on_the_embedded_model(village):
    assert village.npc_ids() == VILLAGERS
    assert all(village.npc(n).kind == "block" for n in VILLAGERS)
    assert village.model.config.num_hidden_layers == 30


def test_blocks_fit_their_own_characters_held_out_lines(village):
    """Dev replies: each NPC's own block beats no LoRA and beats another NPC's block."""
    dev, profiles = read_samples(VILLAGE, "dev"), read_profiles(VILLAGE)
    samples = [s for n in VILLAGERS for s in dev[n][:8]]
    own = {n: village.routing([n]) for n in VILLAGERS}
    other = {n: village.routing([VILLAGERS[(i + 3) % 6]]) for i, n in enumerate(VILLAGERS)}

    def score(routing_of):
        scores = score_samples(
            village, samples, lambda s: profiles[s.character], routing_of, show_progress=False
        )
        return mean_perplexity(scores)

    own_ppl = score(lambda s: own[s.character])
    base_ppl = score(lambda s: None)
    other_ppl = score(lambda s: other[s.character])
    assert own_ppl < base_ppl and own_ppl < other_ppl, (own_ppl, base_ppl, other_ppl)


def test_block_and_fused_npcs_speak(village):
    scene = [Turn("Player", "Good evening! What news tonight?")]
    greedy = replace(GREEDY, max_tokens=24)
    brann = reply(village, "brann", scene, greedy)
    pip = reply(village, "pip", scene, greedy)
    assert brann and pip and brann != pip
    lyra = village.fuse(load_profile(ASSETS / "bard.toml"))
    try:
        assert lyra.kind == "fused" and len(lyra.blend) == 3
        assert abs(sum(lyra.blend.values()) - 1) < 1e-9
        assert reply(village, "lyra", scene, greedy)
    finally:
        village.remove_npc("lyra")


def test_the_models_keep_their_own_layers_not_hub_kernels(village):
    # transformers 5.x kernelizes from the model hub by default; the runtime opts out,
    # for the language model and for the role encoder alike.
    encoder = RoleEncoder()._model
    for model in [village.model, *(m for m in encoder.modules() if hasattr(m, "config"))]:
        assert not getattr(model, "use_kernels", False)
