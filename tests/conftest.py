"""Fixtures: a tiny random Llama with the real SmolLM2 tokenizer, and the real encoder."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VILLAGE = ROOT / "examples" / "village"
SHARED = ROOT.parent / "shared" / "data"


def make_tiny_model(folder: Path, tokenizer, seed: int = 0, layers: int = 2) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def real_tokenizer():
    from npc_runtime.base_model import load_tokenizer

    return load_tokenizer(None)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, real_tokenizer) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", real_tokenizer)


@pytest.fixture(scope="session")
def other_tiny_base(tmp_path_factory, real_tokenizer) -> Path:
    """Same architecture as tiny_base, different weights."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny2") / "model", real_tokenizer, seed=1)


@pytest.fixture(scope="session")
def village_data() -> Path:
    return VILLAGE


@pytest.fixture()
def new_cast(tiny_base):
    """An untrained cast on the tiny base (blocks added by the test)."""
    from npc_runtime.base_model import load_base
    from npc_runtime.neeko import Cast, GateConfig, LoraConfig

    def build(**lora):
        return Cast(load_base(tiny_base), LoraConfig(**lora), GateConfig())

    return build


@pytest.fixture(scope="session")
def trained_cast_dir(tmp_path_factory, tiny_base) -> Path:
    """A small cast pre-tuned on three village characters, saved once per session."""
    from npc_runtime.neeko.config import TrainConfig
    from npc_runtime.neeko.tuning import pretune

    cast, _ = pretune(
        VILLAGE,
        base=str(tiny_base),
        # A fixed recipe, not train's defaults: the fuzzers' coverage counts (how many
        # replies emit actions) are tuned to this cast's weights.
        train=TrainConfig(
            epochs=1, learning_rate=5e-4, batch_size=4, max_samples_per_character=8, max_length=128
        ),
        characters=["brann", "marla", "pip"],
        show_progress=False,
    )
    return save_visible(cast, tmp_path_factory.mktemp("casts") / "village")


def save_visible(cast, folder: Path) -> Path:
    """Save a cast whose blocks were trained only briefly, once each block has a visible
    effect: they start with B = 0, and comparisons between them should mean something."""
    with torch.no_grad():
        for layer in cast.neeko.layers.values():
            for b in layer.lora_B:
                b.add_(torch.randn_like(b) * 0.05)
    cast.neeko.invalidate()
    cast.save(folder)
    return folder
