"""The dynamic LoRA layer: sparse gating computes exactly the dense formula."""

import torch
from torch import nn

from npc_runtime.neeko.config import LoraConfig
from npc_runtime.neeko.layer import DynamicLoraLinear
from npc_runtime.neeko.model import NeekoModel


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(16, 12, bias=False)


def _neeko(blocks: int = 5) -> NeekoModel:
    torch.manual_seed(0)
    neeko = NeekoModel(_Toy(), LoraConfig(rank=4, alpha=8, target_modules=("q_proj",)))
    for i in range(blocks):
        neeko.add_block(f"b{i}")
    with torch.no_grad():
        for b in neeko.layers["q_proj"].lora_B:
            b.normal_()
    return neeko


def _dense(layer: DynamicLoraLinear, x: torch.Tensor, gates: torch.Tensor, scaling: float):
    """h = W0 x + scaling * sum over ALL blocks of g_k B_k A_k x (the paper's formula)."""
    out = layer.base_layer(x)
    for k in range(layer.num_blocks):
        delta = x @ layer.lora_A[k].T @ layer.lora_B[k].T
        out = out + scaling * gates[:, k, None, None] * delta
    return out


def test_sparse_gating_equals_dense_per_row():
    neeko = _neeko()
    layer = neeko.layers["q_proj"]
    blends = [{"b1": 1.0}, {"b0": 0.2, "b3": 0.8}, {"b4": 0.5, "b1": 0.25, "b2": 0.25}]
    gates = torch.zeros(3, 5)
    for row, blend in enumerate(blends):
        for b, w in blend.items():
            gates[row, int(b[1:])] = w
    x = torch.randn(3, 7, 16)
    routing = neeko.routing(blends)
    assert routing.blocks == (0, 1, 2, 3, 4)
    with neeko.routed(routing), torch.no_grad():
        sparse = layer(x)
    dense = _dense(layer, x, gates, scaling=2.0)
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)


def test_inactive_blocks_are_not_computed():
    neeko = _neeko()
    layer = neeko.layers["q_proj"]
    routing = neeko.routing([{"b2": 1.0}])
    assert routing.blocks == (2,)
    # Poison every other block: a dense pass would turn the output into NaN.
    with torch.no_grad():
        for k in (0, 1, 3, 4):
            layer.lora_A[k].fill_(float("nan"))
    with neeko.routed(routing), torch.no_grad():
        out = layer(torch.randn(2, 3, 16))
    assert torch.isfinite(out).all()


def test_no_routing_is_the_base_layer():
    layer = _neeko().layers["q_proj"]
    x = torch.randn(2, 3, 16)
    assert torch.equal(layer(x), layer.base_layer(x))


def test_batch_of_different_npcs_matches_each_alone(trained_cast_dir):
    from npc_runtime import load_cast
    from npc_runtime.neeko.profile import profile_from_dict

    cast = load_cast(trained_cast_dir)
    cast.fuse(profile_from_dict({"id": "fused1", "name": "Tess", "profile": "A cheerful cook."}))
    ids = torch.tensor([cast.tokenizer.encode("Good evening, what news?")] * 4)
    npcs = ["brann", "marla", "pip", "fused1"]
    with torch.no_grad(), cast.speaking(npcs):
        batched = cast.model(ids).logits
    for row, npc in enumerate(npcs):
        with torch.no_grad(), cast.speaking(npc):
            alone = cast.model(ids[row : row + 1]).logits[0]
        torch.testing.assert_close(batched[row], alone, atol=1e-4, rtol=0)
    # and the NPCs really differ from each other
    assert (batched[0] - batched[1]).abs().max() > 1e-3
