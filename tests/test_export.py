"""Export: a standard peft adapter that gives our logits for the NPC."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from npc_runtime import load_cast
from npc_runtime.neeko.export import export_peft
from npc_runtime.neeko.profile import profile_from_dict

peft = pytest.importorskip("peft")


@pytest.mark.parametrize("npc_id", ["marla", "tess"])
def test_peft_export_gives_the_same_logits(trained_cast_dir, tiny_base, tmp_path, npc_id):
    cast = load_cast(trained_cast_dir)
    cast.fuse(profile_from_dict({"id": "tess", "name": "Tess", "profile": "A loud cook."}))
    assert len(cast.npc("tess").blend) == 3
    out = export_peft(cast, npc_id, tmp_path / npc_id)
    assert {p.name for p in out.iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}

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
