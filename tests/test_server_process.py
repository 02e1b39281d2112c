"""`npc-runtime serve` as a real process: kill -9 at a busy moment loses at most the
replies in flight, SIGTERM shuts down gracefully, `npc-runtime chat` talks to it."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from server_harness_streams import StreamWatcher, wait_until

from npc_runtime import cli
from npc_runtime.client import NpcClient, NpcRuntimeError

LONG = {"max_tokens": 1000, "seed": 3}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """One `npc-runtime serve` process, its output in data_dir/server.log."""

    def __init__(self, cast: Path, base: Path, data_dir: Path, port: int):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "server.log"
        self.address = f"127.0.0.1:{port}"
        command = [sys.executable, "-m", "npc_runtime.cli", "serve", "--cast", str(cast)]
        command += ["--base", str(base), "--data-dir", str(data_dir), "--port", str(port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command + ["--no-metrics", "--bridge-port", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not wait_until(self._serving, timeout=180):
            self.proc.kill()
            raise AssertionError(f"server did not start:\n{self.log()}")

    def _serving(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with grpc.insecure_channel(self.address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture()
def setup(tmp_path, trained_cast_dir, tiny_base):
    shutil.copytree(trained_cast_dir, tmp_path / "cast")
    return tmp_path / "cast", tiny_base, tmp_path / "data", _free_port()


def test_kill_9_loses_at_most_the_replies_in_flight(setup):
    cast, base, data, port = setup
    server = Serve(cast, base, data, port)
    client = NpcClient(server.address)
    scene = [("brann", "s1", "Morning!"), ("marla", "s1", "Tea?"), ("pip", "s2", "Hi Pip")]
    for npc, session, line in scene:
        assert client.say(npc, line, session_id=session, sampling={"max_tokens": 6}).stored
    kept = {s: [(t.npc_id, t.text) for t in client.get_session(s).turns] for s in ("s1", "s2")}

    watcher = StreamWatcher(client.speak("brann", "A long tale", session_id="s3", sampling=LONG))
    watcher.start()
    assert watcher.wait_tokens(3)
    stored: list[str] = []  # lines whose Final said stored, from a client committing fast

    def hammer() -> None:
        with NpcClient(server.address) as c:
            for n in range(10_000):
                try:
                    c.say("marla", f"q{n}", session_id="busy", sampling={"max_tokens": 1})
                except NpcRuntimeError:
                    return
                stored.append(f"q{n}")

    thread = threading.Thread(target=hammer)
    thread.start()
    assert wait_until(lambda: len(stored) >= 8)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(30)
    thread.join(30)
    watcher.join(30)
    assert watcher.final is None and watcher.error is not None  # that reply was in flight

    server = Serve(cast, base, data, port)
    client = NpcClient(server.address)
    for session, turns in kept.items():
        assert [(t.npc_id, t.text) for t in client.get_session(session).turns] == turns
    with pytest.raises(NpcRuntimeError, match="NOT_FOUND"):
        client.get_session("s3")
    busy = [t.text for t in client.get_session("busy").turns if not t.npc_id]
    # Every line reported stored is there; at most one more (committed, Final not sent).
    assert busy[: len(stored)] == stored and len(busy) - len(stored) in (0, 1)
    seqs = [t.seq for t in client.get_session("busy").turns]
    assert seqs == list(range(1, len(seqs) + 1))
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    with sqlite3.connect(data / "sessions.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_sigterm_lets_the_reply_in_flight_finish(setup):
    cast, base, data, port = setup
    server = Serve(cast, base, data, port)
    client = NpcClient(server.address)
    watcher = StreamWatcher(
        client.speak("pip", "Quick!", session_id="t", sampling={"max_tokens": 60, "seed": 1})
    )
    watcher.start()
    assert watcher.wait_tokens(2)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0
    watcher.join(30)
    assert watcher.final is not None and watcher.final.stored
    assert "shutting down" in server.log() and "stopped" in server.log()

    server = Serve(cast, base, data, port)
    with NpcClient(server.address) as again:
        assert again.get_session("t").turns[1].text == watcher.final.text
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(60)


def test_chat_streams_and_switches_npc(setup, monkeypatch, capsys):
    cast, base, data, port = setup
    server = Serve(cast, base, data, port)
    script = "Hello Brann\n/npc marla\nAnd you, Marla?\n/npc nobody\n/history\n/quit\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    argv = ["chat", "--npc", "brann", "--session", "tavern", "--address", server.address]
    assert cli.main(argv + ["--max-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "Talking to Brann Ironhand in session 'tavern'" in out
    assert "Now talking to Marla Thistledown." in out
    assert "[NOT_FOUND] no NPC 'nobody'" in out
    turns = NpcClient(server.address).get_session("tavern").turns
    assert [t.npc_id or t.text for t in turns] == [
        "Hello Brann",
        "brann",
        "And you, Marla?",
        "marla",
    ]
    assert f"Marla Thistledown: {turns[3].text}" in out  # printed by /history
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(60)
