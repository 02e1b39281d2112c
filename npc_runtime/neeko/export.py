"""Export one NPC as a standard peft LoRA adapter, for multi-LoRA servers at scale.

A blend sum_k g_k B_k A_k is itself a LoRA of rank r*K: A' stacks the A_k, B' stacks the
g_k-scaled B_k, and lora_alpha = alpha*K keeps the scaling alpha/r unchanged. Beside the
adapter, npc_prompt.json holds the NPC's system prompt and how its scenes are prompted.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..base_model import hf_folder
from .cast import Cast
from .prompt import system_prompt


def export_peft(cast: Cast, npc_id: str, out: str | Path) -> Path:
    npc = cast.npc(npc_id)
    lora = cast.lora
    neeko = cast.neeko
    blocks = sorted(npc.blend, key=neeko.block_index)
    k = len(blocks)
    tensors = {}
    for name, layer in neeko.layers.items():
        a = torch.cat([layer.lora_A[neeko.block_index(b)].detach() for b in blocks], dim=0)
        b_ = torch.cat(
            [npc.blend[b] * layer.lora_B[neeko.block_index(b)].detach() for b in blocks], dim=1
        )
        prefix = f"base_model.model.{name}"
        tensors[f"{prefix}.lora_A.weight"] = a.float().contiguous().cpu()
        tensors[f"{prefix}.lora_B.weight"] = b_.float().contiguous().cpu()
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        # A folder transformers loads as it is (a GGUF base: its converted copy), so that
        # AutoPeftModelForCausalLM.from_pretrained(folder) finds the base.
        "base_model_name_or_path": str(hf_folder(cast.base.path)),
        "r": lora.rank * k,
        "lora_alpha": lora.alpha * k,
        "lora_dropout": lora.dropout,
        "target_modules": list(lora.target_modules),
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
    }
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, folder / "adapter_model.safetensors", metadata={"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    prompt = {
        "npc_id": npc.id,
        "name": npc.profile.name,
        "system_prompt": system_prompt(npc.profile),
        "how": "Apply the base model's chat template to: this system prompt; then the "
        "scene, everyone else's lines merged into user turns, one line each as "
        "'Speaker: text'; the NPC's own earlier lines as assistant turns. The adapter was "
        "trained on exactly this (npc_runtime.neeko.prompt.scene_messages).",
    }
    (folder / "npc_prompt.json").write_text(json.dumps(prompt, indent=2, ensure_ascii=False))
    return folder
