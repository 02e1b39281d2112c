"""Memory and lore through a real daemon on loopback: what an NPC's prompt holds of a
session older than its window (recap and recalled lines), the recap written in the
background and kept like turns, and lore passages that reach the prompt when the scene
asks for them."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest
from serve_harness import Serve, free_port
from server_harness import ServerThread, server_config, store_exchanges

from npc_runtime.client import NpcClient, NpcRuntimeError
from npc_runtime.neeko.lore import LoreError, passages, read_lore
from npc_runtime.server.memory import window_start
from npc_runtime.sessions import NPC, PLAYER, NewTurn, SessionStore
from npc_runtime.v1 import npc_runtime_pb2 as pb

FACT = "Remember this: my sister Elowen keeps bees in Thornbury."
SHORT = {"max_tokens": 3, "seed": 1}


def _recording(running):
    """The engine requests the daemon makes, as it makes them."""
    engine = running.daemon.service.engine
    seen, submit = [], engine.submit
    engine.submit = lambda request: seen.append(request) or submit(request)
    return seen


def _wait_for_recap(client, session_id: str, through: int, timeout: float = 180) -> pb.Session:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session = client.get_session(session_id)
        if session.summary_through_seq >= through:
            return session
        time.sleep(0.5)
    raise AssertionError(f"no recap through turn {through} in {timeout} s")


def test_a_fact_from_200_turns_ago_is_still_in_the_prompt(tmp_path, trained_cast_dir, tiny_base):
    config = server_config(trained_cast_dir, tmp_path, tiny_base)
    player = lambda i: FACT if i == 0 else f"Line {i}: the rain keeps falling on the mill."  # noqa: E731
    store_exchanges(config, "long", 100, player, lambda i: f"Aye, {i}.")
    running = ServerThread(config).start()
    try:
        seen = _recording(running)
        with running.client() as client:
            ask = "Where does my sister Elowen keep her bees?"
            assert client.say("brann", ask, session_id="long", sampling=SHORT).stored
            reply = next(r for r in seen if r.request_id and r.npc_id == "brann")
            assert FACT in reply.notes  # recalled word for word, 200 turns later
            assert all(FACT not in t.text for t in reply.turns)  # not in the window itself
            # The turns that left the window are folded into a recap in the background.
            left = window_start(202, config.service.max_history_turns) - 1
            session = _wait_for_recap(client, "long", left)
            assert session.summary and session.summary_through_seq == left
            recaps = [r for r in seen if r.npc_id == "recap"]
            assert recaps and all(r.voice is not None and not r.voice.blend for r in recaps)
            assert FACT in recaps[0].turns[-1].text  # the first fold read the fact
            client.say("brann", "And my sister?", session_id="long", sampling=SHORT)
            assert f"Earlier in this scene: {session.summary}" in seen[-1].notes
    finally:
        running.stop()
    # The recap is stored like turns: a new daemon on the same data directory has it.
    again = ServerThread(config).start()
    try:
        with again.client() as client:
            assert client.get_session("long").summary == session.summary
            client.reset_session("long")
            with pytest.raises(NpcRuntimeError, match="NOT_FOUND"):
                client.get_session("long")
            assert client.say("brann", "Hello", session_id="long", sampling=SHORT).stored
            assert client.get_session("long").summary == ""
    finally:
        again.stop()


def test_a_short_session_has_no_notes(tmp_path, trained_cast_dir, tiny_base):
    running = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base)).start()
    try:
        seen = _recording(running)
        with running.client() as client:
            client.say("pip", "Hello!", session_id="short", sampling=SHORT)
            assert seen[-1].notes == "" and client.get_session("short").summary == ""
    finally:
        running.stop()


def test_lore_reaches_the_prompt_when_the_scene_asks(tmp_path, trained_cast_dir, tiny_base):
    config = server_config(trained_cast_dir, tmp_path, tiny_base)
    lore = config.cast / "lore"
    (lore / "brann").mkdir(parents=True)
    (lore / "world.txt").write_text(
        "The old bridge at Dunmere fell in the spring flood.\n\n"
        "The king taxes salt twice a year, at midsummer and midwinter.\n"
    )
    (lore / "brann" / "forge.md").write_text("Brann's forge burns only charcoal from Blackwood.")
    running = ServerThread(config).start()
    try:
        seen = _recording(running)
        with running.client() as client:
            npc = client.get_npc("brann")
            assert {(s.path, s.passages) for s in npc.lore} == {
                ("world.txt", 2),
                ("brann/forge.md", 1),
            }
            assert [s.path for s in client.get_npc("marla").lore] == ["world.txt"]
            client.say("marla", "What happened to the bridge at Dunmere?", sampling=SHORT)
            assert "bridge at Dunmere fell" in seen[-1].notes
            assert "salt" not in seen[-1].notes  # only what is near the scene
            forge = "What charcoal does the forge burn?"
            client.say("brann", forge, session_id="f1", sampling=SHORT)
            assert "charcoal from Blackwood" in seen[-1].notes
            client.say("marla", forge, session_id="f2", sampling=SHORT)
            assert "Blackwood" not in seen[-1].notes  # Brann's lore is his own
            # A scene among NPCs: each turn with its own NPC's notes.
            list(client.converse(["brann", "marla"], forge, turns=2, session_id="f3"))
            notes = {r.npc_id: r.notes for r in seen[-2:]}
            assert "Blackwood" in notes["brann"] and "Blackwood" not in notes["marla"]
    finally:
        running.stop()


def test_bad_lore_stops_the_start_with_a_clear_error(tmp_path, trained_cast_dir, tiny_base):
    config = server_config(trained_cast_dir, tmp_path, tiny_base)
    (config.cast / "lore" / "a" / "b").mkdir(parents=True)
    (config.cast / "lore" / "a" / "b" / "deep.txt").write_text("Too deep.")
    with pytest.raises(LoreError, match="folder named by an NPC id"):
        read_lore(config.cast / "lore")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "x.txt").write_bytes(b"\xff\xfe not text")
    with pytest.raises(LoreError, match="not UTF-8"):
        read_lore(tmp_path / "bin")
    with pytest.raises(LoreError, match="no such lore folder"):
        read_lore(tmp_path / "nowhere")


def test_passages_are_paragraphs_and_long_ones_are_cut_at_sentences():
    text = "One.\nStill one.\n\n\n" + " ".join(f"Sentence {i} is here." for i in range(100))
    parts = passages(text)
    assert parts[0] == "One. Still one."
    assert len(parts) > 2 and all(len(p) <= 600 for p in parts[1:])
    assert " ".join(parts[1:]) == " ".join(f"Sentence {i} is here." for i in range(100))


def test_the_window_moves_a_chunk_at_a_time():
    assert window_start(10, 64) == 1
    assert [window_start(n, 64) for n in (64, 65, 72, 73)] == [1, 9, 9, 17]


def test_a_lore_folder_that_is_missing_fails_the_daemon(tmp_path, trained_cast_dir, tiny_base):
    config = server_config(trained_cast_dir, tmp_path, tiny_base, lore=tmp_path / "none")
    with pytest.raises(LoreError, match="no such lore folder"):
        ServerThread(config).start()


def test_the_recap_survives_kill_9(tmp_path, trained_cast_dir, tiny_base):
    """A recap is committed like turns: a kill -9 while replies stream keeps it whole."""
    shutil.copytree(trained_cast_dir, tmp_path / "cast")
    data, port = tmp_path / "data", free_port()
    data.mkdir()
    store = SessionStore(data / "sessions.sqlite3")
    for i in range(40):
        pair = [NewTurn(PLAYER, "", "Player", f"Line {i}"), NewTurn(NPC, "pip", "Pip", f"Ok {i}")]
        store.append("old", f"r{i}", pair)
    store.close()
    server = Serve(tmp_path / "cast", tiny_base, data, port, "--max-history-turns", "16")
    try:
        with NpcClient(server.address) as client:
            assert client.say("pip", "Hello again", session_id="old", sampling=SHORT).stored
            session = _wait_for_recap(client, "old", window_start(82, 16) - 1)
            for n in range(3):  # more turns, more folds in flight
                client.say("pip", f"And {n}?", session_id="old", sampling=SHORT)
            session = client.get_session("old")
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(30)
    finally:
        Serve.kill_all()
    again = Serve(tmp_path / "cast", tiny_base, data, port)
    try:
        with NpcClient(again.address) as client:
            after = client.get_session("old")
            # The recap then or a later one, never a torn or lost one.
            assert after.summary_through_seq >= session.summary_through_seq > 0
            assert after.summary and (after.summary_through_seq > session.summary_through_seq
                                      or after.summary == session.summary)  # fmt: skip
    finally:
        Serve.kill_all()
