"""The `npc-runtime` command end to end on the tiny base model."""

import json
import subprocess
import sys

import pytest

from npc_runtime.cli import main

ASSETS = "npc_runtime/assets/village"
FAST = ["--epochs", "1", "--max-samples", "4", "--max-length", "160", "--batch-size", "2"]


@pytest.fixture(scope="module")
def cli_cast(tmp_path_factory, tiny_base, village_data):
    out = tmp_path_factory.mktemp("cli") / "cast"
    code = main(
        [
            "train",
            "--data",
            str(village_data),
            "--out",
            str(out),
            "--base",
            str(tiny_base),
            "--characters",
            "brann,pip,zef",
            "--no-house",
            *FAST,
        ]
    )
    assert code == 0
    return out


def _json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_train_list_show(cli_cast, capsys):
    rows = _json(capsys, ["npc", "list", str(cli_cast), "--json"])
    assert [r["id"] for r in rows] == ["brann", "pip", "zef"]
    assert all(r["kind"] == "block" and r["blend"] == {r["id"]: 1.0} for r in rows)
    shown = _json(capsys, ["npc", "show", str(cli_cast), "pip", "--json"])
    assert shown["name"] == "Pip"


def test_train_with_a_house(tmp_path, tiny_base, village_data, capsys):
    out = tmp_path / "cast"
    train = ["train", "--data", str(village_data), "--base", str(tiny_base), *FAST]
    assert main([*train, "--out", str(out), "--characters", "pip,zef"]) == 0  # the default
    assert "2 blocks and a house block" in capsys.readouterr().out
    assert json.loads((out / "cast.json").read_text())["house"]["file"].startswith("blocks/_house-")
    rows = _json(capsys, ["npc", "list", str(out), "--json"])
    assert [r["blend"] for r in rows] == [{"pip": 1.0, "_house": 1.0}, {"zef": 1.0, "_house": 1.0}]
    added = _json(capsys, ["npc", "add", str(out), "--profile", f"{ASSETS}/bard.toml", "--json"])
    assert added["blend"]["_house"] == 1.0 and set(added["blend"]) == {"pip", "zef", "_house"}
    assert main(["say", str(out), "--npc", "lyra", "Hello?", "--greedy", "--max-tokens", "4"]) == 0


def test_fusion_expansion_export_remove(cli_cast, capsys, tmp_path, village_data):
    added = _json(
        capsys, ["npc", "add", str(cli_cast), "--profile", f"{ASSETS}/bard.toml", "--json"]
    )
    assert added["id"] == "lyra" and added["kind"] == "fused" and len(added["blend"]) == 3
    shown = _json(capsys, ["npc", "show", str(cli_cast), "lyra", "--json"])
    assert shown["blend"] == added["blend"]

    assert (
        main(["expand", str(cli_cast), "--data", str(village_data), "--character", "marla", *FAST])
        == 0
    )
    kinds = {r["id"]: r["kind"] for r in _json(capsys, ["npc", "list", str(cli_cast), "--json"])}
    assert kinds == {
        "brann": "block",
        "pip": "block",
        "zef": "block",
        "lyra": "fused",
        "marla": "block",
    }

    assert main(["export", str(cli_cast), "--npc", "lyra", "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "adapter_model.safetensors").exists()

    capsys.readouterr()
    assert main(["npc", "remove", str(cli_cast), "brann"]) == 2  # lyra blends brann's block
    assert "remove those NPCs first" in capsys.readouterr().err
    assert main(["npc", "remove", str(cli_cast), "lyra"]) == 0
    assert main(["npc", "remove", str(cli_cast), "brann"]) == 0
    ids = [r["id"] for r in _json(capsys, ["npc", "list", str(cli_cast), "--json"])]
    assert ids == ["pip", "zef", "marla"]


def test_train_never_replaces_a_cast_without_force(tmp_path, tiny_base, village_data, capsys):
    out = tmp_path / "cast"
    train = ["train", "--data", str(village_data), "--base", str(tiny_base), "--no-house", *FAST]
    assert main([*train, "--out", str(out), "--characters", "pip"]) == 0
    assert main(["npc", "add", str(out), "--profile", f"{ASSETS}/bard.toml"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main([*train, "--out", str(out), "--characters", "zef"]) == 2
    err = capsys.readouterr().err
    assert "a cast exists at" in err and "pass --force" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    assert main([*train, "--out", str(other), "--characters", "zef", "--force"]) == 2
    assert "not a cast" in capsys.readouterr().err and (other / "todo.txt").exists()
    assert main([*train, "--out", str(out), "--characters", "zef", "--force"]) == 0
    ids = [r["id"] for r in _json(capsys, ["npc", "list", str(out), "--json"])]
    assert ids == ["zef"]


def test_say_is_reproducible_and_errors_are_clear(cli_cast, capsys):
    argv = ["say", str(cli_cast), "--npc", "zef", "Hello!", "--max-tokens", "6", "--seed", "3"]
    capsys.readouterr()
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first and first.strip()

    assert main(["say", str(cli_cast), "--npc", "nobody", "hi"]) == 2
    assert "no NPC 'nobody'" in capsys.readouterr().err
    assert main(["npc", "add", str(cli_cast), "--profile", "missing.toml"]) == 2
    assert "cannot read profile" in capsys.readouterr().err


def test_entry_point_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "npc_runtime.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("train", "expand", "npc", "say", "export", "demo"):
        assert command in out


def test_input_errors_come_before_the_model_loads(cli_cast, tmp_path, capsys, village_data):
    """With a base model that does not exist, only the input's error can be reported: so
    it was found before any model was read."""
    missing = ["--base", str(tmp_path / "no-such-model")]
    capsys.readouterr()
    assert main(["say", str(cli_cast), "--npc", "nobdy", "hi", *missing]) == 2
    err = capsys.readouterr().err
    assert "no NPC 'nobdy'" in err and "there are pip" in err and "no-such-model" not in err
    assert main(["npc", "add", str(cli_cast), "--profile", "typo.toml", *missing]) == 2
    assert "cannot read profile" in capsys.readouterr().err
    expand = ["expand", str(cli_cast), "--data", str(village_data)]
    assert main([*expand, "--character", "nobody", *missing]) == 2
    assert "no training records for 'nobody'" in capsys.readouterr().err
    assert main([*expand, "--character", "pip", *missing]) == 2
    assert "'pip' is in" in capsys.readouterr().err
    for argv in (["export", str(cli_cast), "--npc", "x", "--out", str(tmp_path / "o")],
                 ["npc", "remove", str(cli_cast), "x"]):  # fmt: skip
        assert main([*argv, *missing]) == 2
        assert "no NPC 'x'" in capsys.readouterr().err


def test_chat_without_a_daemon_says_how_to_start_one(capsys):
    assert main(["chat", "--npc", "brann", "--address", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "npc-runtime serve" in err and "--address" in err
