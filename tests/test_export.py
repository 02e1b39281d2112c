"""Export: a standard peft adapter that gives our logits for the NPC."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from npc_runtime import load_cast
from npc_runtime.neeko.export import export_peft
from npc_runtime.neeko.profile import profile_from_dict
from npc_runtime.neeko.prompt import system_prompt

peft = pytest.importorskip("peft")


@pytest.mark.parametrize("npc_id", ["marla", "tess"])
def test_peft_export_gives_the_same_logits(trained_cast_dir, tiny_base, tmp_path, npc_id):
    cast = load_cast(trained_cast_dir)
    cast.fuse(profile_from_dict({"id": "tess", "name": "Tess", "profile": "A loud cook."}))
    assert len(cast.npc("tess").blend) == 3
    out = export_peft(cast, npc_id, tmp_path / npc_id)
    files = {p.name for p in out.iterdir()}
    assert files == {"adapter_config.json", "adapter_model.safetensors", "npc_prompt.json"}
    prompt = json.loads((out / "npc_prompt.json").read_text())
    assert prompt["system_prompt"] == system_prompt(cast.npc(npc_id).profile)

    base = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    served = peft.PeftModel.from_pretrained(base, out).eval()
    ids = torch.tensor([cast.tokenizer.encode("Well met, stranger. What brings you here?")])
    with torch.no_grad():
        theirs = served(ids).logits
        with cast.speaking(npc_id):
            ours = cast.model(ids).logits
        plain = served.get_base_model()
    assert (theirs - ours).abs().max().item() <= 1e-4
    with torch.no_grad(), served.disable_adapter():
        assert (plain(ids).logits - ours).abs().max().item() > 1e-3  # the adapter matters
    # The adapter names a base that loads by itself: the standard one-line load works.
    auto = peft.AutoPeftModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        assert (auto(ids).logits - ours).abs().max().item() <= 1e-4


def test_the_embedded_gguf_converts_to_the_folder_an_export_names():
    """Only the conversion export_peft relies on (no cast on a GGUF base is exported
    here): the embedded GGUF becomes a folder transformers loads without gguf_file."""
    from npc_runtime.base_model import default_base_path, hf_folder

    folder = hf_folder(default_base_path())  # the embedded GGUF, converted once
    assert (folder / "config.json").exists()
