"""The bundle a game ships runs where no Python is: built from the test cast (PyInstaller,
minutes), started from another directory under an empty environment (`env -i`, no
virtualenv, no checkout on any path), spoken to over gRPC and the bridge, and stopped."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from bridge_harness import Conn

from npc_runtime.bundle import build_bundle
from npc_runtime.client import NpcClient

pytest.importorskip("PyInstaller")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, trained_cast_dir, tiny_base):
    out = tmp_path_factory.mktemp("bundle") / "village"
    report = build_bundle(trained_cast_dir, out, str(tiny_base), "float32")
    assert report.bytes > 0
    return out


def test_the_bundle_holds_what_a_game_ships(bundle):
    assert (
        (bundle / "LICENSES" / "npc-runtime-LICENSE")
        .read_text()
        .startswith(" " * 33 + "Apache License")
    )
    assert any((bundle / "LICENSES" / "torch").iterdir())
    assert (bundle / "model" / "config.json").exists() and (bundle / "cast" / "cast.json").exists()
    command = json.loads((bundle / "bundle.json").read_text())["command"]
    assert Path(command[0].replace("{bundle}", str(bundle))).is_file()
    assert (bundle / ".gdignore").exists()


def test_the_bundle_serves_with_no_python_installed(bundle, tmp_path):
    spec = json.loads((bundle / "bundle.json").read_text())["command"]
    command = [arg.replace("{bundle}", str(bundle)) for arg in spec]  # as launchers do
    command += ["--port", "0", "--bridge-port", "0", "--data-dir", str(tmp_path / "data")]
    daemon = subprocess.Popen(
        ["env", "-i", f"HOME={tmp_path}", *command],
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = daemon.stdout.readline()
        assert line, daemon.stderr.read()
        ready = json.loads(line)
        assert ready["event"] == "ready", (ready, daemon.stderr.read() if daemon.poll() else "")
        assert ready["npc_count"] == 3
        with NpcClient(f"127.0.0.1:{ready['port']}") as client:
            final = client.say("brann", "Morning!", session_id="b1", sampling={"max_tokens": 4})
            assert final.stored
            # Constrained decoding (llguidance, a native extension) works frozen too.
            wave = {"name": "wave", "description": "wave at the player"}
            final = client.say(
                "brann", "Bye!", session_id="b1", sampling={"max_tokens": 4},
                actions=[wave], action_choice="wave",
            )  # fmt: skip
            assert final.stored and [a.name for a in final.actions][:1] == ["wave"]
        with Conn(f"ws://127.0.0.1:{ready['bridge_port']}") as conn:
            frames = conn.call(
                "Speak",
                {"npc_id": "pip", "session_id": "b2", "text": "Hi!", "sampling": {"max_tokens": 4}},
            )
            assert frames[-1]["done"] and "final" in frames[-2]["event"]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
