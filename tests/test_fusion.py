"""Fusion: a profile alone becomes the top-k softmax blend over the blocks' roles."""

import numpy as np
import pytest

from npc_runtime import load_cast
from npc_runtime.neeko.config import GateConfig
from npc_runtime.neeko.gate import gate_blend
from npc_runtime.neeko.profile import profile_from_dict

TESS = {"id": "tess", "name": "Tess", "profile": "A loud, cheerful cook who loves gossip."}


def test_fusion_blend_is_topk_softmax(trained_cast_dir):
    cast = load_cast(trained_cast_dir)
    npc = cast.fuse(profile_from_dict(TESS))
    assert npc.kind == "fused"
    e = cast.encoder.encode([npc.profile.role_text()])[0]
    ids = list(cast.blocks)
    roles = np.stack([cast.blocks[b].role_embedding for b in ids]).astype(np.float64)
    logits = roles @ e.astype(np.float64) / cast.gate.temperature
    p = np.exp(logits - logits.max())
    p /= p.sum()
    top = np.argsort(-p)[: cast.gate.top_k]
    expected = {ids[i]: p[i] / p[top].sum() for i in top}
    assert set(npc.blend) == set(expected)
    for b, w in expected.items():
        assert npc.blend[b] == pytest.approx(w, abs=1e-6)
    assert sum(npc.blend.values()) == pytest.approx(1.0)


def test_gate_top_k_and_temperature():
    roles = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([0.6, 0.8])}
    q = np.array([1.0, 0.0])
    one = gate_blend(q, roles, GateConfig(temperature=0.05, top_k=1))
    assert one == {"a": 1.0}
    sharp = gate_blend(q, roles, GateConfig(temperature=0.01, top_k=3))
    soft = gate_blend(q, roles, GateConfig(temperature=10.0, top_k=3))
    assert sharp["a"] > 0.99 and soft["a"] < 0.5
    assert list(soft) == ["a", "c", "b"]


def test_fused_npc_cannot_take_an_existing_id(trained_cast_dir):
    from npc_runtime.neeko.profile import ProfileError

    cast = load_cast(trained_cast_dir)
    with pytest.raises(ProfileError, match="exists already"):
        cast.fuse(profile_from_dict({**TESS, "id": "brann"}))


def test_fused_npc_survives_save_and_load(trained_cast_dir, tmp_path):
    cast = load_cast(trained_cast_dir)
    npc = cast.fuse(profile_from_dict(TESS))
    cast.save(tmp_path / "c")
    again = load_cast(tmp_path / "c").npc("tess")
    assert again.kind == "fused" and again.blend == npc.blend
