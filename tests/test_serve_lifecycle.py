"""The game owns the daemon's life: `serve --port 0 --bridge-port 0` picks free ports
and says which in one JSON line (and a ready file) once it serves; one daemon per data
directory; it stops when the game's process ends, however that ends; start-up errors
are one JSON line with a stable code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from websockets.sync.client import connect

from npc_runtime.client import NpcClient, NpcRuntimeError

TOKEN = "from-a-file"


def serve(cast, base, data, *extra, stdin=None) -> subprocess.Popen:
    command = [sys.executable, "-m", "npc_runtime.cli", "serve", "--cast", str(cast)]
    command += ["--base", str(base), "--data-dir", str(data), *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def first_line(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return json.loads(line)


@pytest.fixture()
def game():
    """A stand-in for the game's process."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_game_starts_finds_and_outlives_no_daemon(tmp_path, trained_cast_dir, tiny_base, game):
    (tmp_path / "token").write_text(TOKEN + "\n")
    data = tmp_path / "data"
    ready = tmp_path / "ready.json"
    daemon = serve(trained_cast_dir, tiny_base, data, "--port", "0", "--bridge-port", "0",
                   "--ready-file", str(ready), "--parent-pid", str(game.pid),
                   "--token-file", str(tmp_path / "token"))  # fmt: skip
    try:
        record = first_line(daemon)
        assert record["event"] == "ready" and record["pid"] == daemon.pid
        assert record["port"] > 0 and record["bridge_port"] > 0 and record["npc_count"] == 3
        assert record["metrics_port"] is None  # no metrics on a player's PC unless asked
        assert json.loads(ready.read_text()) == record
        address = f"127.0.0.1:{record['port']}"
        with NpcClient(address) as stranger, pytest.raises(NpcRuntimeError) as refused:
            stranger.status()
        assert refused.value.code == "UNAUTHENTICATED"
        with NpcClient(address, token=TOKEN) as client:
            assert client.status().npc_count == 3
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with connect(f"ws://127.0.0.1:{record['bridge_port']}", additional_headers=headers):
            pass
        with open(f"/proc/{daemon.pid}/cmdline") as argv:
            assert TOKEN not in argv.read()
        assert data.stat().st_mode & 0o777 == 0o700

        second = serve(trained_cast_dir, tiny_base, data, "--port", "0", "--no-bridge")
        assert second.wait(120) == 2
        error = first_line(second)
        assert error["event"] == "error" and error["code"] == "data_dir_locked"
        assert f"pid {daemon.pid}" in error["message"]

        game.send_signal(signal.SIGKILL)  # the game crashes: the daemon goes too
        assert daemon.wait(60) == 0
        assert "has exited: shutting down" in daemon.stderr.read()
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait()
    # Its lock went with it: a new daemon starts on the same data directory.
    again = serve(trained_cast_dir, tiny_base, data, "--port", "0", "--no-bridge")
    try:
        assert first_line(again)["event"] == "ready"
    finally:
        again.terminate()
        assert again.wait(60) == 0


def test_a_parent_already_gone_stops_the_daemon_at_once(tmp_path, trained_cast_dir, tiny_base):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    started = time.monotonic()
    daemon = serve(trained_cast_dir, tiny_base, tmp_path / "d", "--port", "0", "--no-bridge",
                   "--parent-pid", str(gone.pid))  # fmt: skip
    assert daemon.wait(120) == 0
    assert time.monotonic() - started < 120


def test_closing_its_standard_input_stops_the_daemon_cleanly(tmp_path, trained_cast_dir, tiny_base):
    """How a game stops its daemon on any OS (Mono and Windows have no SIGTERM to send)."""
    daemon = serve(trained_cast_dir, tiny_base, tmp_path / "d", "--port", "0", "--no-bridge",
                   "--stop-on-stdin-close", stdin=subprocess.PIPE)  # fmt: skip
    try:
        record = first_line(daemon)
        with NpcClient(f"127.0.0.1:{record['port']}") as client:
            assert client.status().npc_count == 3
        daemon.stdin.write("anything the game writes is ignored\n")
        daemon.stdin.flush()
        time.sleep(0.5)
        assert daemon.poll() is None  # input alone does not stop it; its end does
        daemon.stdin.close()
        assert daemon.wait(60) == 0
        assert "standard input closed: shutting down" in daemon.stderr.read()
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait()


@pytest.mark.parametrize("problem", ["model_missing", "cast_damaged", "bad_option"])
def test_start_up_errors_are_one_json_line_with_a_code(
    tmp_path, trained_cast_dir, tiny_base, problem
):
    cast, base, extra = trained_cast_dir, tiny_base, []
    if problem == "model_missing":
        base = tmp_path / "no-such-model"
    elif problem == "cast_damaged":
        cast = tmp_path / "not-a-cast"
        cast.mkdir()
    else:
        extra = ["--token-file", str(tmp_path / "missing-token")]
    ready = tmp_path / "ready.json"
    proc = serve(
        cast, base, tmp_path / "d", "--port", "0", "--no-bridge", "--ready-file", str(ready), *extra
    )
    assert proc.wait(120) == 2
    record = first_line(proc)
    assert record == {"event": "error", "code": problem, "message": record["message"]}
    assert json.loads(ready.read_text()) == record  # for games that cannot read stdout
    assert proc.stdout.read() == ""  # one line
    assert proc.stderr.read().strip().splitlines()[-1] == f"npc-runtime: error: {record['message']}"
