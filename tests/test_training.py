"""Pre-tuning keeps blocks isolated; expansion leaves old NPCs bitwise unchanged."""

from dataclasses import replace

import pytest
import torch

from npc_runtime import load_cast
from npc_runtime.neeko.cast import HOUSE
from npc_runtime.neeko.config import TrainConfig
from npc_runtime.neeko.data import read_profiles, read_samples
from npc_runtime.neeko.prompt import Turn
from npc_runtime.neeko.train import train_blocks
from npc_runtime.neeko.tuning import expand
from npc_runtime.speak import GREEDY, reply


def _snapshot(cast):
    return {b: {k: v.clone() for k, v in cast.neeko.block_state(b).items()} for b in cast.blocks}


def test_each_step_changes_only_its_own_block(new_cast, village_data):
    cast = new_cast()
    samples = read_samples(village_data)
    profiles = read_profiles(village_data)
    chars = ["brann", "marla", "zef"]
    for c in chars:
        cast.add_block_npc(
            profiles[c], torch.nn.functional.normalize(torch.randn(384), dim=0).numpy()
        )
    before = _snapshot(cast)
    seen = []

    def check(progress):
        nonlocal before
        after = _snapshot(cast)
        for block in chars:
            same = all(torch.equal(after[block][k], before[block][k]) for k in after[block])
            assert same == (block not in progress.blocks), (progress, block)
        seen.append(progress.blocks)
        before = after

    # weight decay > 0 and several steps per block: AdamW state exists for every block.
    # 8 samples a block in updates of 2 rows, 2 blocks a step: 12 updates in 6 steps.
    config = TrainConfig(
        epochs=2,
        batch_size=4,
        block_batch_size=2,
        max_samples_per_character=4,
        max_length=160,
        weight_decay=0.1,
    )
    train_blocks(
        cast, {c: samples[c] for c in chars}, profiles, config, on_step=check, show_progress=False
    )
    assert len(seen) == 6 and all(len(blocks) == 2 for blocks in seen)
    assert sorted(b for blocks in seen for b in blocks) == sorted(chars * 4)


@pytest.mark.parametrize("house", [False, True], ids=["plain", "house"])
def test_a_block_trains_bitwise_the_same_alone_or_beside_others(new_cast, village_data, house):
    """Rows of several characters share each forward pass, yet a block's update depends
    on its own samples only: each of its gradients, and so its tensors, are bitwise equal
    whichever blocks train beside it (other lengths in the batch, other positions, other
    token counts). Gradients are compared, not only weights: AdamW's rounding could hide
    a difference in the last bits of a gradient. With a house block (frozen, every row
    through it) the same holds, and the house does not move."""
    cast = new_cast(target_modules=("q_proj", "v_proj", "o_proj", "up_proj", "down_proj"))
    if house:
        cast.add_house()
        with torch.no_grad():  # a house that does something
            for layer in cast.neeko.layers.values():
                layer.lora_B[0].normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
        house_start = {k: v.clone() for k, v in cast.neeko.block_state(HOUSE).items()}
    samples, profiles = read_samples(village_data), read_profiles(village_data)
    chars = ["brann", "marla", "zef", "pip"]
    for c in chars:
        cast.add_block_npc(profiles[c], torch.ones(384).numpy() / 384**0.5)
    start = _snapshot(cast)
    config = TrainConfig(
        epochs=1, batch_size=6, block_batch_size=2, max_samples_per_character=24, weight_decay=0.1
    )
    results = []
    for company in ([], ["marla"], ["zef", "pip", "marla"]):
        for block, tensors in start.items():
            cast.neeko.load_block_state(block, tensors)
        trained = {c: samples[c] for c in [*company, "brann"]}
        grads, sizes = _train_watching(cast, trained, profiles, config, "brann")
        results.append((cast.neeko.block_state("brann"), grads, sizes))
    (alone, alone_grads, _), *mixed = results
    assert any(not torch.equal(alone[k], start["brann"][k]) for k in alone)  # it learned
    assert len(alone_grads) == 12
    for tensors, grads, _ in mixed:
        assert all(torch.equal(alone[k], tensors[k]) for k in alone)
        for step, (a, b) in enumerate(zip(alone_grads, grads, strict=True)):
            assert all(torch.equal(x, y) for x, y in zip(a, b)), f"gradient {step} differs"
    # and the mixed runs really shared their passes: 48 updates in 16 steps of 3 blocks
    assert results[2][2] == [3] * 16
    if house:
        now = cast.neeko.block_state(HOUSE)
        assert all(torch.equal(now[k], house_start[k]) for k in now)


def test_blocks_train_through_the_house(new_cast, village_data):
    """A character block of a house cast learns beside the house, as its NPC speaks: its
    gradients differ from those of the same block in a cast without one."""
    samples, profiles = read_samples(village_data), read_profiles(village_data)
    config = TrainConfig(epochs=1, batch_size=2, max_samples_per_character=4)
    grads = []
    for house in (False, True):
        torch.manual_seed(0)
        cast = new_cast()
        if house:
            cast.add_house()
            with torch.no_grad():
                for layer in cast.neeko.layers.values():
                    layer.lora_B[0].normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
        torch.manual_seed(0)
        cast.add_block_npc(profiles["brann"], torch.ones(384).numpy() / 384**0.5)
        grads.append(
            _train_watching(cast, {"brann": samples["brann"]}, profiles, config, "brann")[0]
        )
    assert len(grads[0]) == len(grads[1]) == 4
    pairs = [(x, y) for a, b in zip(*grads) for x, y in zip(a, b)]
    assert all(x.shape == y.shape for x, y in pairs)
    assert not any(torch.equal(x, y) for x, y in pairs if x.abs().sum() > 0)


def _train_watching(cast, samples, profiles, config, block):
    """Train; return the watched block's gradients at each of its updates, and how many
    blocks each step updated."""
    watched = cast.neeko.block_parameters(block)
    grads, sizes = [], []

    def log(progress):
        sizes.append(len(progress.blocks))
        if block in progress.blocks:
            grads.append([p.grad.clone() for p in watched])

    train_blocks(cast, samples, profiles, config, on_step=log, show_progress=False)
    return grads, sizes


def test_training_is_seedable(new_cast, village_data):
    samples, profiles = read_samples(village_data), read_profiles(village_data)
    results = []
    for _ in range(2):
        torch.manual_seed(123)  # block initialisation happens when the block is added
        cast = new_cast()
        cast.add_block_npc(profiles["pip"], torch.ones(384).numpy() / 384**0.5)
        config = TrainConfig(epochs=1, batch_size=2, max_samples_per_character=4, max_length=160)
        train_blocks(cast, {"pip": samples["pip"]}, profiles, config, show_progress=False)
        results.append(cast.neeko.block_state("pip"))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_expansion_leaves_old_npcs_bitwise_unchanged(trained_cast_dir, village_data, tmp_path):
    import shutil

    folder = tmp_path / "cast"
    shutil.copytree(trained_cast_dir, folder)
    cast = load_cast(folder)
    old_blocks = _snapshot(cast)
    greedy = replace(GREEDY, max_tokens=12)
    scene = [Turn("Player", "Any news from the north road?")]
    before = {n: reply(cast, n, scene, greedy) for n in cast.npc_ids()}
    ids = torch.tensor([cast.tokenizer.encode("Evening, friend.")])
    with torch.no_grad(), cast.speaking("marla"):
        logits_before = cast.model(ids).logits

    config = TrainConfig(epochs=1, batch_size=2, max_samples_per_character=4, max_length=160)
    expand(cast, village_data, "old_nessa", train=config, show_progress=False)
    cast.save()
    assert cast.npc("old_nessa").kind == "block"

    for reloaded in (cast, load_cast(folder)):
        after = _snapshot(reloaded)
        for block, tensors in old_blocks.items():
            assert all(torch.equal(tensors[k], after[block][k]) for k in tensors)
        assert {n: reply(reloaded, n, scene, greedy) for n in before} == before
        with torch.no_grad(), reloaded.speaking("marla"):
            assert torch.equal(reloaded.model(ids).logits, logits_before)
    # and the new block learned something: it is no longer the zero-initialised no-op
    b = reloaded.neeko.block_state("old_nessa")
    assert any(v.abs().sum() > 0 for k, v in b.items() if k.endswith("lora_B"))
