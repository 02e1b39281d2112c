"""`npc-runtime serve` as a real process, pointed at a damaged cast: it exits at once with
a non-zero status and one clear line on stderr naming the bad file, no traceback, and
leaves the cast and the data directory as they were."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from npc_runtime.sessions import PLAYER, NewTurn, SessionStore

# Only a hang guard: a damaged cast is refused as soon as it is read.
EXIT_TIMEOUT = 180


def _first_block(cast: Path) -> Path:
    return sorted((cast / "blocks").glob("*.safetensors"))[0]


def _truncate_block(cast: Path) -> Path:
    block = _first_block(cast)
    data = block.read_bytes()
    block.write_bytes(data[: len(data) // 2])
    return block


def _garble_manifest(cast: Path) -> Path:
    manifest = cast / "cast.json"
    data = manifest.read_bytes()
    manifest.write_bytes(data[: len(data) // 2])  # cut mid-way, as by a full disk
    return manifest


def _remove_block(cast: Path) -> Path:
    block = _first_block(cast)
    block.unlink()
    return block


DAMAGE: dict[str, Callable[[Path], Path]] = {
    "truncated-block": _truncate_block,
    "manifest-not-json": _garble_manifest,
    "missing-block": _remove_block,
}


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder`, by content."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _sessions(path: Path) -> tuple[str, list[tuple]]:
    with sqlite3.connect(path) as db:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        rows = db.execute(
            "SELECT session_id, seq, speaker_kind, text FROM turns ORDER BY session_id, seq"
        ).fetchall()
    return check, rows


def _serve(cast: Path, base: Path, data_dir: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "npc_runtime.cli", "serve", "--cast", str(cast)]
    command += ["--base", str(base), "--data-dir", str(data_dir), "--port", "0"]
    command += ["--no-metrics", "--bridge-port", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=EXIT_TIMEOUT, env=env, check=False
    )


def _files(folder) -> list[str]:
    """The folder's files, but SQLite's -wal and -shm: SQLite makes and removes them as
    connections come and go (the sessions themselves are compared apart)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_cast_stops_serve_with_one_clear_line(
    tmp_path, trained_cast_dir, tiny_base, damage
):
    cast = tmp_path / "cast"
    shutil.copytree(trained_cast_dir, cast)
    bad = DAMAGE[damage](cast)
    cast_before = _snapshot(cast)
    data = tmp_path / "data"
    store = SessionStore(data / "sessions.sqlite3")  # a data directory in use
    store.append("save1", "r1", [NewTurn(PLAYER, "", "Player", "Hello there")])
    store.close()
    (data / "notes.txt").write_text("the player's own file\n")
    sessions_before = _sessions(data / "sessions.sqlite3")
    files_before = _files(data)

    result = _serve(cast, tiny_base, data)

    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("npc-runtime: error: "), result.stderr
    assert str(bad) in last, result.stderr  # names the bad file, whole
    assert sum("error" in line.lower() for line in result.stderr.splitlines()) == 1, result.stderr
    assert _snapshot(cast) == cast_before
    assert (data / "notes.txt").read_text() == "the player's own file\n"
    assert _files(data) == files_before
    assert _sessions(data / "sessions.sqlite3") == sessions_before
    assert sessions_before[0] == "ok"


def test_a_damaged_cast_creates_no_data_directory(tmp_path, trained_cast_dir, tiny_base):
    cast = tmp_path / "cast"
    shutil.copytree(trained_cast_dir, cast)
    _garble_manifest(cast)
    result = _serve(cast, tiny_base, tmp_path / "data")
    assert result.returncode != 0 and "cast.json" in result.stderr, result.stderr
    assert not (tmp_path / "data").exists(), sorted((tmp_path / "data").rglob("*"))


@pytest.mark.parametrize("option", ["--port", "--bridge-port", "--metrics-port"])
def test_a_port_in_use_is_one_line_before_the_model_loads(tmp_path, trained_cast_dir, option):
    """The base model given does not exist: the port is found taken before it is read."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": "0", "--bridge-port": "0", "--metrics-port": "0", option: str(port)}
        command = [
            sys.executable,
            "-m",
            "npc_runtime.cli",
            "serve",
            "--cast",
            str(trained_cast_dir),
        ]
        command += ["--base", str(tmp_path / "no-such-model"), "--data-dir", str(tmp_path / "d")]
        command += [arg for pair in ports.items() for arg in pair]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        result = subprocess.run(command, capture_output=True, text=True, timeout=EXIT_TIMEOUT,
                                env=env, check=False)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "error" in x.lower()]
    assert line.startswith("npc-runtime: error: cannot listen on 127.0.0.1:")
    assert f":{port} ({option})" in line and "no-such-model" not in line
    record = json.loads(result.stdout.splitlines()[0])  # and for the game, on stdout
    assert record["event"] == "error" and record["code"] == "port_in_use"
