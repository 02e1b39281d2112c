"""The cast on disk: refused when damaged or foreign, never half-saved."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from npc_runtime import load_cast
from npc_runtime.neeko import store
from npc_runtime.neeko.cast import CastError
from npc_runtime.neeko.profile import profile_from_dict


@pytest.fixture()
def cast_dir(trained_cast_dir, tmp_path):
    folder = tmp_path / "cast"
    shutil.copytree(trained_cast_dir, folder)
    return folder


def _block_files(folder):
    return sorted((folder / "blocks").glob("*.safetensors"))


def test_layout_is_json_and_safetensors_only(cast_dir):
    manifest = json.loads((cast_dir / "cast.json").read_text())
    assert manifest["format"] == "npc-runtime-cast" and manifest["version"] == 1
    assert manifest["lora"]["rank"] == 8 and manifest["base"]["fingerprint"]["digest"]
    names = {p.name for p in cast_dir.rglob("*") if p.is_file()}
    assert names == {"cast.json"} | {p.name for p in _block_files(cast_dir)}
    assert all(p.suffix in (".json", ".safetensors") for p in cast_dir.rglob("*") if p.is_file())


def test_truncated_block_is_refused_naming_the_file(cast_dir):
    victim = _block_files(cast_dir)[0]
    victim.write_bytes(victim.read_bytes()[:1000])
    with pytest.raises(CastError, match=f"{victim.name}.*corrupt or truncated"):
        load_cast(cast_dir)


def test_flipped_byte_is_refused(cast_dir):
    victim = _block_files(cast_dir)[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(CastError, match=victim.name):
        load_cast(cast_dir)


def test_missing_block_is_refused(cast_dir):
    victim = _block_files(cast_dir)[0]
    victim.unlink()
    with pytest.raises(CastError, match=f"{victim.name}: block file missing"):
        load_cast(cast_dir)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_format", "future_version"])
def test_damaged_manifest_is_refused(cast_dir, damage):
    path = cast_dir / "cast.json"
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\xff\xfe not json")
    elif damage == "wrong_format":
        path.write_text(json.dumps({"format": "something-else"}))
    else:
        path.write_text(text.replace('"version": 1', '"version": 99'))
    with pytest.raises(CastError, match="cast.json"):
        load_cast(cast_dir)


def test_not_a_cast(tmp_path):
    with pytest.raises(CastError, match="not a cast"):
        load_cast(tmp_path)


def test_cast_for_another_base_is_refused(cast_dir, other_tiny_base):
    with pytest.raises(CastError, match="weights differ"):
        load_cast(cast_dir, base=other_tiny_base)


def test_cast_for_another_architecture_is_refused(cast_dir, tmp_path, real_tokenizer):
    from conftest import make_tiny_model

    three_layers = make_tiny_model(tmp_path / "m3", real_tokenizer, layers=3)
    with pytest.raises(CastError, match="architecture"):
        load_cast(cast_dir, base=three_layers)


def test_every_interrupted_save_leaves_a_loadable_cast(cast_dir, monkeypatch):
    """Crash at each file write of a save (fusion + expansion-like change)."""
    original = load_cast(cast_dir)
    reference = {n: original.npc(n).blend for n in original.npc_ids()}
    real_write = store._write_atomic
    writes = 0

    def count(path, data):
        nonlocal writes
        writes += 1
        real_write(path, data)

    def change(cast):
        cast.fuse(profile_from_dict({"id": "tess", "name": "Tess", "profile": "A cook."}))
        with torch.no_grad():
            cast.neeko.layers[next(iter(cast.neeko.layers))].lora_B[0].add_(1.0)

    dry_run = cast_dir.parent / "dry-run"
    shutil.copytree(cast_dir, dry_run)
    monkeypatch.setattr(store, "_write_atomic", count)
    cast = load_cast(dry_run)
    change(cast)
    cast.save()
    total = writes
    assert total == 2  # the changed block, then the manifest

    for crash_at in range(1, total + 1):
        calls = 0

        def crashing(path, data, crash_at=crash_at):
            nonlocal calls
            calls += 1
            if calls == crash_at:
                raise OSError("simulated crash")
            real_write(path, data)

        monkeypatch.setattr(store, "_write_atomic", crashing)
        cast = load_cast(cast_dir)
        change(cast)
        with pytest.raises(OSError, match="simulated"):
            cast.save()
        monkeypatch.setattr(store, "_write_atomic", real_write)
        survivor = load_cast(cast_dir)
        assert {n: survivor.npc(n).blend for n in survivor.npc_ids()} == reference


SAVER = """
import sys, torch
from npc_runtime import load_cast
cast = load_cast(sys.argv[1])
layer = next(iter(cast.neeko.layers.values()))
print("ready", flush=True)
while True:
    with torch.no_grad():
        for b in layer.lora_B:
            b.add_(0.01)
    cast.save()
"""


def test_kill_9_during_saves_leaves_a_loadable_cast(cast_dir):
    for delay in (0.3, 0.7, 1.1):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(cast_dir)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        cast = load_cast(cast_dir)
        assert set(cast.npc_ids()) == {"brann", "marla", "pip"}
