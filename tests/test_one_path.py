"""One generation path: `say`, the Python API and the daemon give the same text for the
same scene, settings and seed (all through the engine, with one set of defaults)."""

from __future__ import annotations

from dataclasses import replace

from server_harness import ServerThread, server_config

from npc_runtime import load_cast
from npc_runtime.cli import main
from npc_runtime.neeko.prompt import Turn
from npc_runtime.speak import DEFAULT, reply

LINE = "Can you mend my sword?"


def test_say_the_api_and_the_daemon_agree(trained_cast_dir, tiny_base, tmp_path, capsys):
    seeds = [3, 11]
    capsys.readouterr()
    said = []
    for seed in seeds:
        argv = ["say", str(trained_cast_dir), "--npc", "marla", LINE, "--max-tokens", "16"]
        assert main([*argv, "--seed", str(seed)]) == 0
        said.append(capsys.readouterr().out.strip())

    cast = load_cast(trained_cast_dir, dtype="auto")  # what the CLI and the daemon load
    api = [
        reply(cast, "marla", [Turn("Player", LINE)], replace(DEFAULT, max_tokens=16, seed=s))
        for s in seeds
    ]

    running = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base)).start()
    try:
        with running.client() as client:
            served = [
                client.say(
                    "marla", LINE, session_id=f"s{s}", sampling={"max_tokens": 16, "seed": s}
                ).text
                for s in seeds
            ]
    finally:
        running.stop()
    assert said == api == served
    assert said[0] != said[1] and all(said)  # the seed really is used
