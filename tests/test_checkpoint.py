"""int8/int4 models loaded from a safetensors checkpoint one weight at a time (the 1.5B
model's load no longer peaks at its float size) are bitwise the model transformers loads
whole and quantises after: biases, an untied head, q/k norms, a sharded bfloat16 file.
A checkpoint the reader cannot cover falls back to the whole load; a broken one is a
clear error."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from transformers import AutoModelForCausalLM

from npc_runtime import base_model
from npc_runtime.base_model import BaseModelError, load_base
from npc_runtime.checkpoint import Checkpoint

SMALL = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
)  # fmt: skip


def _save(folder, tokenizer, family: str, **save) -> None:
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen3Config

    ids = {"vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id}
    config = {
        "qwen2": lambda: Qwen2Config(**SMALL, tie_word_embeddings=False, **ids),  # biases
        "qwen3": lambda: Qwen3Config(**SMALL, tie_word_embeddings=True, **ids),  # q/k norms
    }[family]()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # norms and biases start at 1 and 0: make them tell
        for name, param in model.named_parameters():
            if name.endswith(("norm.weight", "bias")):
                param.uniform_(-1.0, 1.0)
    model.to(torch.bfloat16).save_pretrained(folder, **save)
    tokenizer.save_pretrained(folder)


def _no_whole_load(*_, **__):
    raise AssertionError("the whole checkpoint was loaded")


def _whole(monkeypatch, folder, dtype):
    """The model as transformers loads it, whole, then quantised."""
    with monkeypatch.context() as patch:
        patch.setattr(base_model, "_load_quantized", lambda *_: None)
        return load_base(folder, dtype=dtype)


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
@pytest.mark.parametrize("dtype", ["int8", "int4"])
def test_the_streamed_load_is_bitwise_the_whole_one(
    tmp_path, real_tokenizer, monkeypatch, family, dtype
):
    _save(tmp_path, real_tokenizer, family, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()  # shards, read as one
    with monkeypatch.context() as patch:  # the streamed path, not the whole load
        patch.setattr(AutoModelForCausalLM, "from_pretrained", _no_whole_load)
        streamed = load_base(tmp_path, dtype=dtype)
    whole = _whole(monkeypatch, tmp_path, dtype)
    ours, theirs = streamed.model.state_dict(), whole.model.state_dict()
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        assert ours[name].dtype == value.dtype and torch.equal(ours[name], value), name
    assert streamed.fingerprint == whole.fingerprint
    assert all(not p.is_meta and not p.requires_grad for p in streamed.model.parameters())
    assert all(not b.is_meta for b in streamed.model.buffers())
    ids = torch.tensor([real_tokenizer.encode("Well met, traveller.")])
    with torch.no_grad():
        assert torch.equal(streamed.model(ids).logits, whole.model(ids).logits)


def test_a_checkpoint_that_does_not_name_every_weight_is_loaded_whole_or_refused(
    tmp_path, real_tokenizer, monkeypatch
):
    """Names the reader does not know (transformers renames some on load) mean the whole
    load; names that nothing knows are an error, not a model with random holes."""
    _save(tmp_path, real_tokenizer, "qwen2")
    file = tmp_path / "model.safetensors"
    raw = file.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    renamed = {k.replace("model.", "MODEL.", 1): v for k, v in header.items()}
    text = json.dumps(renamed, separators=(",", ":")).encode().ljust(size)  # offsets hold
    assert len(text) == size
    file.write_bytes(raw[:8] + text + raw[8 + size :])
    assert "MODEL.norm.weight" in Checkpoint(tmp_path).names()
    calls = []
    real = base_model._load_quantized
    monkeypatch.setattr(base_model, "_load_quantized", lambda *a: calls.append(real(*a)))
    lacks = r"lacks 26 of the model's weights \(model\.embed_tokens"  # all but the head
    with pytest.raises(BaseModelError, match=lacks):
        load_base(tmp_path, dtype="int8")  # not a model started from random values
    assert calls == [None]  # the reader said so instead of guessing


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path, real_tokenizer):
    _save(tmp_path, real_tokenizer, "qwen2")
    file = tmp_path / "model.safetensors"
    file.write_bytes(file.read_bytes()[:-1000])
    with pytest.raises(BaseModelError, match="truncated|cannot load"):
        load_base(tmp_path, dtype="int8")
