"""The Godot 4 addon (clients/godot): its GDScript parses and lints (gdtoolkit), and the
frames it sends (clients/protocol/godot_frames.json) get, from a real daemon on loopback,
answers of the shapes its code reads. No Godot binary is needed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from server_harness import ServerThread, server_config
from test_bridge import Conn, _match_frames

ROOT = Path(__file__).resolve().parents[1]
GODOT = ROOT / "clients" / "godot"
ADDON = GODOT / "addons" / "npc_runtime"
FRAMES = ROOT / "clients" / "protocol" / "godot_frames.json"
GD_FILES = sorted(GODOT.rglob("*.gd"))


def test_the_addon_and_example_files_exist():
    names = {p.relative_to(GODOT).as_posix() for p in GODOT.rglob("*") if p.is_file()}
    addon = ("plugin.cfg", "plugin.gd", "npc_runtime.gd", "npc_speaker.gd", "npc_reply.gd")
    for name in (*addon, "npc_daemon.gd"):
        assert f"addons/npc_runtime/{name}" in names
    for name in ("main.tscn", "main.gd"):
        assert f"example/{name}" in names
    # The example project is clients/godot itself: no symlink, so it opens on Windows too.
    assert not [p for p in (ROOT / "clients").rglob("*") if p.is_symlink()]
    project = (GODOT / "project.godot").read_text()
    assert 'run/main_scene="res://example/main.tscn"' in project
    assert 'NpcRuntime="*res://addons/npc_runtime/npc_runtime.gd"' in project
    assert "res://addons/npc_runtime/plugin.cfg" in project


@pytest.mark.parametrize("tool", ["parser", "linter"])
def test_gdscript_parses_and_lints(tool):
    assert GD_FILES, "no GDScript found"
    result = subprocess.run(
        [sys.executable, "-m", f"gdtoolkit.{tool}", *map(str, GD_FILES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_fixtures_are_the_frames_the_addon_builds():
    source = (ADDON / "npc_runtime.gd").read_text()
    assert "clients/protocol/godot_frames.json" in source
    built = set(re.findall(r'_call\("(\w+)"', source))
    assert built == {"Speak", "React", "Converse", "RegisterNpc", "ListNpcs", "GetSession"}
    cases = json.loads(FRAMES.read_text())["cases"]
    frames = [f for c in cases for f in (c["send"] if isinstance(c["send"], list) else [c["send"]])]
    assert built <= {f.get("method") for f in frames}
    for frame in frames:
        assert frame["id"].isdigit(), "frame ids are the addon's int request ids"
        if frame.get("cancel"):
            assert set(frame) == {"id", "cancel"} and '"cancel": true' in source
            continue
        assert set(frame) == {"id", "method", "request"}
        for key in frame["request"]:
            assert f'"{key}"' in source, key


def _signals(frames: list[dict], method: str) -> list[tuple]:
    """What npc_runtime.gd's _handle_text emits for these frames (the same lookups)."""
    out = []
    for frame in frames:
        if "error" in frame:
            out.append(("error", frame["error"]["code"], frame["error"]["message"]))
        elif "event" in frame:
            event = frame["event"]
            for kind in ("token", "sentence", "final", "started"):
                if kind in event:
                    text = event[kind].get("text", "") if kind != "started" else ""
                    out.append((kind, text))
                    break
        elif "response" in frame:  # unary signals carry the call's id
            out.append((method, int(frame["id"]), frame["response"]))
    return out


def test_the_addon_frames_replay_against_a_daemon(tmp_path, trained_cast_dir, tiny_base):
    cases = json.loads(FRAMES.read_text())["cases"]
    running = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base)).start()
    try:
        with Conn(running.bridge_url) as conn:
            for case in cases:
                sends = case["send"] if isinstance(case["send"], list) else [case["send"]]
                conn.send(sends[0])
                frames = []
                for later in sends[1:]:
                    frames.append(conn.recv())
                    conn.send(later)
                if not (frames and frames[-1].get("done")):
                    frames += conn.until_done({sends[0]["id"]})
                assert _match_frames(case["expect"], frames), (case["name"], frames)
                _check_what_the_addon_reads(sends[0].get("method"), frames)
    finally:
        running.stop()


def _check_what_the_addon_reads(method: str | None, frames: list[dict]) -> None:
    signals = _signals(frames, method or "")
    if "error" in frames[-1]:
        assert signals[-1][0] == "error" and signals[-1][1].isupper()
        return
    if method == "Converse":  # what _handle_scene_event hands each turn's NpcReply
        turns = [f["event"] for f in frames if "started" in f.get("event", {})]
        assert [(t["turn"], t["npc_id"]) for t in turns] == [(0, "brann"), (1, "pip"), (2, "brann")]
        replies = [f["event"] for f in frames if "reply" in f.get("event", {})]
        assert [r["turn"] for r in replies] == [0, 1, 2]
        return
    if method == "React":
        replies = [f["event"] for f in frames if "reply" in f.get("event", {})]
        assert [r["npc_id"] for r in replies] == ["marla", "brann"]
        for reply in replies:  # what _handle_crowd_event hands each NpcReply
            tokens = "".join(
                f["event"]["token"]["text"]
                for f in frames
                if "token" in f.get("event", {}) and f["event"]["npc_id"] == reply["npc_id"]
            )
            assert reply["reply"]["text"] == tokens.strip()
        return
    if method == "Speak":
        kinds = [s[0] for s in signals]
        assert kinds[0] == "started" and kinds[-1] == "final"
        tokens = "".join(text for kind, text in signals if kind == "token")
        assert signals[-1][1] == tokens.strip()
        for frame in frames:  # what npc_reply.gd parses for its action signal
            if "action" in frame.get("event", {}):
                assert isinstance(json.loads(frame["event"]["action"]["arguments_json"]), dict)
    elif method == "ListNpcs":
        (npcs,) = (s[2]["npcs"] for s in signals)
        assert {n["profile"]["id"] for n in npcs} >= {"brann", "marla"}
        assert all(isinstance(n["profile"]["name"], str) for n in npcs)
    elif method == "GetSession":
        (session,) = (s[2] for s in signals)
        assert all(isinstance(t["speaker_name"], str) for t in session["turns"])


def test_each_speak_call_has_a_reply_of_its_own():
    """Events reach the NpcReply of the call whose frame id they carry, never every
    listener of an NPC: NpcSpeaker no longer filters by NPC id."""
    runtime = (ADDON / "npc_runtime.gd").read_text()
    assert "-> NpcReply:" in runtime and "NpcReply.new(_next_id" in runtime
    assert '_handle_event(entry["reply"], frame["event"])' in runtime
    speaker = (ADDON / "npc_speaker.gd").read_text()
    assert "_runtime.speak(" in speaker and "speaker == npc_id" not in speaker
    reply = (ADDON / "npc_reply.gd").read_text()
    for name in ("started", "token", "sentence", "completed", "failed"):
        assert f"signal {name}(" in reply


def test_the_launcher_reads_what_the_daemon_and_bundle_write():
    """npc_daemon.gd's contract with `serve` and `bundle` (no Godot binary here to run it):
    the ready file's keys it reads, the {bundle} placeholder, the options it passes."""
    launcher = (ADDON / "npc_daemon.gd").read_text()
    for option in ("--port", "--bridge-port", "--ready-file", "--parent-pid", "--data-dir"):
        assert f'"{option}"' in launcher
    assert '.replace("{bundle}", bundle_dir)' in launcher
    from npc_runtime.bundle import BUNDLE
    from npc_runtime.server.lifecycle import error_record

    assert BUNDLE == "{bundle}"
    assert set(error_record("x", "y")) == {"event", "code", "message"}
    runtime = (ADDON / "npc_runtime.gd").read_text()
    assert 'info.get("bridge_port"' in runtime and 'info.get("host"' in runtime
