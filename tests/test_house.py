"""The house block: trained first on every character, frozen, spoken through by every NPC.

What fusion, expansion, export and removal mean with it: a fused NPC blends character
blocks and adds the house; expansion trains a new block through the frozen house, so no
old NPC's output moves (the house's bytes included); an export folds the house into the
NPC's adapter; removing an NPC never removes the house.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch
from conftest import save_visible
from server_harness import ServerThread, server_config
from server_harness_streams import village_character
from transformers import AutoModelForCausalLM

from npc_runtime import load_cast
from npc_runtime.neeko.cast import HOUSE, CastError
from npc_runtime.neeko.config import TrainConfig
from npc_runtime.neeko.export import export_peft
from npc_runtime.neeko.profile import ProfileError, profile_from_dict
from npc_runtime.neeko.prompt import Turn
from npc_runtime.neeko.store import verify_cast
from npc_runtime.neeko.tuning import expand, pretune
from npc_runtime.speak import GREEDY, reply

TESS = {"id": "tess", "name": "Tess", "profile": "A loud cook who feeds the whole village."}
SCENE = [Turn("Player", "Any news from the north road?")]
CONFIG = TrainConfig(epochs=1, batch_size=4, max_samples_per_character=6, max_length=128)


@pytest.fixture(scope="module")
def house_cast_dir(tmp_path_factory, tiny_base, village_data):
    cast, report = pretune(
        village_data,
        base=str(tiny_base),
        train=CONFIG,
        characters=["brann", "marla", "pip"],
        show_progress=False,
        house=True,
    )
    # the house trained first, on all 18 samples, a whole batch (4) an update: 5 steps;
    # then the three blocks, 6 rows each, one row an update, all three in each step: 6
    assert report.steps == 5 + 6 and set(report.final_loss) == {HOUSE, "brann", "marla", "pip"}
    house = cast.neeko.block_state(HOUSE)
    assert any(v.abs().sum() > 0 for k, v in house.items() if k.endswith("lora_B"))
    return save_visible(cast, tmp_path_factory.mktemp("house") / "cast")


def _logits(cast, routing, ids):
    with torch.no_grad(), cast.neeko.routed(routing):
        return cast.model(ids).logits


def test_every_npc_speaks_through_the_house(house_cast_dir, tmp_path):
    folder = tmp_path / "cast"
    shutil.copytree(house_cast_dir, folder)
    cast = load_cast(folder)
    assert (
        cast.house is not None
        and HOUSE not in cast.blocks
        and set(cast.blocks)
        == {
            "brann",
            "marla",
            "pip",
        }
    )
    assert all(cast.npc(n).blend == {n: 1.0, HOUSE: 1.0} for n in cast.npc_ids())
    tess = cast.fuse(profile_from_dict(TESS))
    assert tess.blend[HOUSE] == 1.0 and len(tess.blend) == 4
    assert abs(sum(w for b, w in tess.blend.items() if b != HOUSE) - 1) < 1e-9
    ids = torch.tensor([cast.tokenizer.encode("Evening, friend.")])
    spoken = _logits(cast, cast.routing(["marla"]), ids)
    alone = _logits(cast, cast.neeko.routing([{"marla": 1.0}]), ids)
    assert (spoken - alone).abs().max() > 1e-3  # the house matters
    # and survives a save: the same logits after reloading, the house file checked
    cast.save()
    verify_cast(folder)
    again = load_cast(folder)
    assert torch.equal(_logits(again, again.routing(["marla"]), ids), spoken)
    assert again.npc("tess").blend == tess.blend


def test_a_house_comes_first_and_stays(house_cast_dir, new_cast):
    with pytest.raises(CastError, match="already"):
        load_cast(house_cast_dir).add_house()
    cast = new_cast()
    cast.add_block_npc(profile_from_dict(TESS))
    with pytest.raises(CastError, match="before any NPC"):
        cast.add_house()  # it would change how tess speaks
    cast = new_cast()
    cast.add_house()
    with pytest.raises(CastError, match="already"):
        cast.add_house()
    with pytest.raises(CastError, match="trained block"):
        cast.fuse(profile_from_dict(TESS))  # the house alone is nothing to blend
    with pytest.raises(ProfileError, match="invalid"):
        profile_from_dict({**TESS, "id": HOUSE})  # no NPC can take the house's id
    cast = load_cast(house_cast_dir)
    cast.remove_npc("pip")
    assert cast.house is not None and HOUSE in cast.neeko.block_ids


def test_a_corrupt_house_file_is_named(house_cast_dir, tmp_path):
    folder = tmp_path / "cast"
    shutil.copytree(house_cast_dir, folder)
    house = json.loads((folder / "cast.json").read_text())["house"]
    (folder / house["file"]).write_bytes(b"not a block")
    for check in (verify_cast, load_cast):
        with pytest.raises(CastError, match="checksum"):
            check(folder)


def test_expansion_through_the_house_moves_no_old_npc(house_cast_dir, village_data, tmp_path):
    folder = tmp_path / "cast"
    shutil.copytree(house_cast_dir, folder)
    cast = load_cast(folder)
    cast.fuse(profile_from_dict(TESS))
    before_files = json.loads((folder / "cast.json").read_text())
    greedy = replace(GREEDY, max_tokens=10)
    before = {n: reply(cast, n, SCENE, greedy) for n in cast.npc_ids()}
    config = replace(CONFIG, max_samples_per_character=3)
    expand(cast, village_data, "zef", train=config, show_progress=False)
    cast.save()
    assert cast.npc("zef").blend == {"zef": 1.0, HOUSE: 1.0}
    after_files = json.loads((folder / "cast.json").read_text())
    assert after_files["house"] == before_files["house"]  # the same bytes
    old = {b["id"]: b["sha256"] for b in before_files["blocks"]}
    assert {b["id"]: b["sha256"] for b in after_files["blocks"] if b["id"] in old} == old
    for reloaded in (cast, load_cast(folder)):
        assert {n: reply(reloaded, n, SCENE, greedy) for n in before} == before


@pytest.mark.parametrize("npc_id", ["marla", "tess"])
def test_an_export_folds_the_house_in(house_cast_dir, tiny_base, tmp_path, npc_id):
    peft = pytest.importorskip("peft")
    cast = load_cast(house_cast_dir)
    cast.fuse(profile_from_dict(TESS))
    out = export_peft(cast, npc_id, tmp_path / npc_id)
    rank = json.loads((out / "adapter_config.json").read_text())["r"]
    assert rank == cast.lora.rank * len(cast.npc(npc_id).blend)
    base = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    served = peft.PeftModel.from_pretrained(base, out).eval()
    ids = torch.tensor([cast.tokenizer.encode("Well met, stranger. What brings you here?")])
    with torch.no_grad():
        theirs = served(ids).logits
    assert (theirs - _logits(cast, cast.routing([npc_id]), ids)).abs().max().item() <= 1e-4


def test_the_daemon_serves_and_grows_a_house_cast(house_cast_dir, tiny_base, tmp_path):
    """Live: a registered NPC and an expanded one speak through the house; a block NPC's
    reply is the same as offline; nothing old moves."""
    running = ServerThread(server_config(house_cast_dir, tmp_path, tiny_base)).start()
    try:
        with running.client() as client:
            sampling = {"max_tokens": 10, "seed": 1}
            said = client.say("brann", "Any news from the north road?", sampling=sampling)
            assert said.stored and said.text
            tess = client.register_npc(TESS)
            assert {b.block_id for b in tess.blend} >= {HOUSE}
            profile, records = village_character("zef", 3)
            events = list(client.expand_npc(profile, records, {"epochs": 1, "max_length": 128}))
            blend = {b.block_id: b.weight for b in events[-1].done.npc.blend}
            assert blend == {"zef": 1.0, HOUSE: 1.0}
            assert client.say("zef", "What do you sell?", sampling=sampling).stored
    finally:
        running.stop()
    cast = load_cast(tmp_path / "cast")
    assert cast.npc("tess").blend[HOUSE] == 1.0 and cast.npc("zef").blend[HOUSE] == 1.0
    now, then = cast.neeko.block_state(HOUSE), load_cast(house_cast_dir).neeko.block_state(HOUSE)
    assert all(torch.equal(now[k], then[k]) for k in now)
