"""Families the engine's own forward serves besides Llama: a tiny random model of each,
built from transformers' own config class (nothing downloaded), with the embedded
tokenizer and a cast of two blocks and a fused NPC. Our forward's logits equal
transformers' for rows of different NPCs read and decoded together, the prefix cache
gives the same greedy text on and off, the peft export gives our logits and expansion
leaves old blocks bitwise alone. Models outside the forward's reach take the
transformers runner."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest
import torch

from npc_runtime.base_model import load_base
from npc_runtime.engine import Engine, EngineConfig, GenerationRequest, SamplingParams, llama
from npc_runtime.engine.engine import make_runner
from npc_runtime.engine.llama import LlamaRunner
from npc_runtime.engine.runner import Segment, TransformersRunner
from npc_runtime.neeko import Cast, GateConfig, LoraConfig
from npc_runtime.neeko.profile import profile_from_dict
from npc_runtime.neeko.prompt import Turn

# benchmarks/gpu_check.sh runs the forward's tests on its device (float32 there too).
DEVICE = os.environ.get("NPC_RUNTIME_TEST_DEVICE", "cpu")
SMALL = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
)  # fmt: skip


def _families():
    from transformers import MistralConfig, Phi3Config, Qwen2Config, Qwen3Config, SmolLM3Config

    return {
        # q, k and v in one weight, gate and up in another
        "phi3": lambda tok: Phi3Config(**SMALL, tie_word_embeddings=False, **tok),
        # a layer without rope, as SmolLM3 has every fourth
        "smollm3": lambda tok: SmolLM3Config(**SMALL, no_rope_layers=[1, 0], **tok),
        "qwen3": lambda tok: Qwen3Config(**SMALL, tie_word_embeddings=True, **tok),
        "qwen2": lambda tok: Qwen2Config(**SMALL, tie_word_embeddings=False, **tok),
        "mistral": lambda tok: MistralConfig(**SMALL, sliding_window=None, **tok),
    }


def tiny_cast(folder, tokenizer, family: str) -> Cast:
    from transformers import AutoModelForCausalLM

    special = ("bos_token_id", "eos_token_id", "pad_token_id")
    ids = {"vocab_size": len(tokenizer), **{k: getattr(tokenizer, k) for k in special}}
    config = _families()[family](ids)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # norms start at 1: make Qwen3's head norms tell rows apart
        for name, module in model.named_modules():
            if name.endswith(("q_norm", "k_norm")):
                module.weight.uniform_(0.5, 1.5)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cast = Cast(load_base(folder, device=DEVICE), LoraConfig(), GateConfig())
    rng = np.random.default_rng(0)
    for npc in ("brann", "marla"):
        profile = profile_from_dict(
            {"id": npc, "name": npc.title(), "profile": f"{npc}, a villager."}
        )
        cast.add_block_npc(profile, rng.standard_normal(384).astype(np.float32))
    with torch.no_grad():  # blocks start with B = 0: give them an effect to compare
        for layer in cast.neeko.layers.values():
            for b in layer.lora_B:
                b.add_(torch.randn_like(b) * 0.05)
    cast.neeko.invalidate()
    cast.fuse(profile_from_dict({"id": "tess", "name": "Tess", "profile": "A loud cook."}))
    return cast


@pytest.fixture(scope="module", params=["qwen3", "smollm3", "phi3", "qwen2", "mistral"])
def cast(request, tmp_path_factory, real_tokenizer):
    folder = tmp_path_factory.mktemp(request.param) / "model"
    return tiny_cast(folder, real_tokenizer, request.param)


def _blend(cast, npc):
    return tuple(sorted(cast.npc(npc).blend.items()))


def _reference(cast, npc, ids):
    with torch.no_grad(), cast.speaking(npc):
        return cast.model(torch.tensor([ids], device=DEVICE)).logits[0]


def test_the_engine_serves_the_family_with_its_own_forward(cast):
    assert llama.supports(cast.model)
    assert isinstance(make_runner(cast, EngineConfig(), 256), LlamaRunner)


def test_logits_equal_transformers_for_a_batch_of_different_npcs(cast):
    runner = LlamaRunner(cast, slots=4, context=128)
    runner.invalidate()
    text = "Well met, traveller. The road from the north is long and the inn is warm."
    full = cast.tokenizer.encode(text)
    npcs = ["brann", "marla", "tess"]  # two blocks and a fused NPC
    ids = [full[: len(full) - 3 * i] for i in range(3)]
    refs = [_reference(cast, n, p) for n, p in zip(npcs, ids)]
    with torch.no_grad():
        head = [Segment(i, 0, tuple(p[:-2]), _blend(cast, n), True)
                for i, (n, p) in enumerate(zip(npcs, ids))]  # fmt: skip
        out = runner.forward([], head)
        for i, p in enumerate(ids):
            torch.testing.assert_close(out[i], refs[i][len(p) - 3], atol=1e-4, rtol=0)
        for step in range(2):
            decode = [Segment(i, len(p) - 2 + step, (p[len(p) - 2 + step],), _blend(cast, n), True)
                      for i, (n, p) in enumerate(zip(npcs, ids))]  # fmt: skip
            out = runner.forward(decode, [])
            for i, p in enumerate(ids):
                torch.testing.assert_close(out[i], refs[i][len(p) - 2 + step], atol=1e-4, rtol=0)


def test_the_prefix_cache_gives_the_same_greedy_text(cast):
    greedy = SamplingParams(max_tokens=6, temperature=0.0)

    async def conversation(config):
        texts = []
        async with Engine(cast, config) as engine:
            history: list[Turn] = []
            for i in range(3):
                history.append(Turn("Player", f"Question number {i}: any news?"))
                req = GenerationRequest(f"t{i}", "tess", tuple(history), greedy)
                final = [x async for x in engine.submit(req)][-1]
                texts.append(final.text)
                history.append(Turn("Tess", final.text, "tess"))
        return texts

    warm = asyncio.run(conversation(EngineConfig()))
    cold = asyncio.run(conversation(EngineConfig(cache_budget_bytes=0)))
    assert warm == cold


def test_a_sliding_window_or_an_unknown_rope_takes_the_transformers_runner(cast):
    cfg = cast.model.config
    saved = (cfg.sliding_window, getattr(cfg, "use_sliding_window", None), cfg.rope_parameters)
    try:
        cfg.sliding_window, cfg.use_sliding_window = 64, True
        cfg.layer_types = ["sliding_attention"] * cfg.num_hidden_layers
        assert not llama.supports(cast.model)
        assert isinstance(make_runner(cast, EngineConfig(), 256), TransformersRunner)
        cfg.sliding_window, cfg.use_sliding_window = saved[0], saved[1]
        cfg.layer_types = ["full_attention"] * cfg.num_hidden_layers
        cfg.rope_parameters = {"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4}
        assert not llama.supports(cast.model)
    finally:
        cfg.sliding_window, cfg.use_sliding_window, cfg.rope_parameters = saved
        cfg.layer_types = ["full_attention"] * cfg.num_hidden_layers
    assert llama.supports(cast.model)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"rope_scaling": {"type": "yarn", "factor": 2.0}}, "yarn"),  # transformers 4.x
        ({"rope_scaling": {"rope_type": "llama3"}}, "llama3"),
        ({"rope_parameters": {"rope_type": "linear"}}, "linear"),
        ({}, "default"),
    ],
)
def test_the_rope_type_is_read_as_either_transformers_writes_it(config, expected):
    from types import SimpleNamespace

    assert llama.rope_type(SimpleNamespace(**config)) == expected


def test_the_peft_export_gives_the_same_logits(cast, tmp_path):
    """A fused NPC's blend exported as one peft LoRA (this family's target names) loads on
    the plain base model and gives our logits."""
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    from npc_runtime.neeko.export import export_peft

    out = export_peft(cast, "tess", tmp_path / "tess")
    base = AutoModelForCausalLM.from_pretrained(
        cast.model.config._name_or_path, dtype=torch.float32
    )
    served = peft.PeftModel.from_pretrained(base, out).eval()
    ids = torch.tensor([cast.tokenizer.encode("Well met, stranger. What brings you here?")])
    with torch.no_grad():
        theirs = served(ids).logits
        with cast.speaking("tess"):
            ours = cast.model(ids).logits
    assert (theirs - ours).abs().max().item() <= 1e-4


def test_expansion_trains_a_block_and_leaves_the_others_bitwise(cast, village_data):
    """Expansion on this family: the new block learns (its B is no longer zero) and every
    old block's tensors, and an old NPC's logits, stay bitwise the same."""
    from npc_runtime.neeko.config import TrainConfig
    from npc_runtime.neeko.tuning import expand

    old = {b: {k: v.clone() for k, v in cast.neeko.block_state(b).items()}
           for b in cast.neeko.block_ids}  # fmt: skip
    ids = torch.tensor([cast.tokenizer.encode("Evening, friend.")])
    before = _reference(cast, "tess", ids[0].tolist())
    config = TrainConfig(epochs=1, batch_size=2, max_samples_per_character=4, max_length=96)
    try:
        expand(cast, village_data, "old_nessa", train=config, show_progress=False)
        for block, tensors in old.items():
            now = cast.neeko.block_state(block)
            assert all(torch.equal(tensors[k], now[k]) for k in tensors), block
        assert torch.equal(_reference(cast, "tess", ids[0].tolist()), before)
        new = cast.neeko.block_state("old_nessa")
        assert any(v.abs().sum() > 0 for k, v in new.items() if k.endswith("lora_B"))
    finally:
        if "old_nessa" in cast.npc_ids():
            cast.remove_npc("old_nessa")
