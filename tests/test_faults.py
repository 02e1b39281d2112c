"""The disk failing under the daemon: a data directory that fills up while it serves, and
one that cannot be written at start-up. Real filesystems (a small tmpfs), real SQLite."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bridge_harness import Conn
from server_harness import ServerThread, server_config

from npc_runtime.client import NpcRuntimeError

SHORT = {"max_tokens": 12, "seed": 5}


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at path: the only way to fill a disk without filling the
    machine's. Needs root (CI runs as root)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem says it is full."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 4096)
    return filler


def turns(db_path: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT session_id, seq, speaker_kind, text FROM turns").fetchall()


def test_a_full_disk_refuses_to_store_and_the_daemon_serves_on(
    tmp_path, trained_cast_dir, tiny_base
):
    disk = small_filesystem(tmp_path / "disk", "8m")
    with disk as root:
        shutil.copytree(trained_cast_dir, root / "cast")
        config = server_config(trained_cast_dir, root, tiny_base, data_dir=root / "data")
        server = ServerThread(config).start()
        try:
            with server.client() as c, Conn(server.bridge_url) as conn:
                for n in range(3):
                    assert c.say("brann", f"Hello {n}", session_id="s", sampling=SHORT).stored
                before = turns(config.sessions_path)
                filler = fill(root)

                refusals = []
                for n in range(40):  # the WAL may still have room for a few
                    try:
                        c.say("marla", f"Tea {n}?", session_id="s", sampling=SHORT)
                    except NpcRuntimeError as exc:
                        refusals.append((f"Tea {n}?", exc))
                        break
                assert refusals, "the disk never filled up"
                refused_line, error = refusals[0]
                code, message = error.code, error.message
                assert code == "RESOURCE_EXHAUSTED", message
                assert "the reply was not stored, nor the player's line" in message
                assert "the disk is full: free some space" in message
                frames = conn.call(
                    "Speak", {"npc_id": "pip", "session_id": "s", "text": "Hi", "sampling": SHORT}
                )
                assert frames[-1]["error"]["code"] == "RESOURCE_EXHAUSTED"
                assert any("token" in f.get("event", {}) for f in frames)  # it did speak

                # What does not need the disk goes on; what was stored is intact.
                stored = turns(config.sessions_path)
                assert stored[: len(before)] == before
                assert refused_line not in [t[3] for t in stored]
                session = c.get_session("s")
                assert len(session.turns) == len(stored)
                assert len(c.list_npcs()) == 3
                with pytest.raises(NpcRuntimeError) as cast_full:
                    c.register_npc({"id": "lyra", "name": "Lyra", "profile": "A bard."})
                assert cast_full.value.code == "RESOURCE_EXHAUSTED"
                assert "nothing changed" in cast_full.value.message
                assert [n.profile.id for n in c.list_npcs()] == ["brann", "marla", "pip"]

                filler.unlink()  # space again: storing resumes, nothing needs restarting
                assert c.say("marla", "Tea now?", session_id="s", sampling=SHORT).stored
                assert turns(config.sessions_path)[-2][3] == "Tea now?"
                c.register_npc({"id": "lyra", "name": "Lyra", "profile": "A bard."})
        finally:
            server.stop()


def serve(cast: Path, base: Path, data_dir: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "npc_runtime.cli", "serve", "--cast", str(cast)]
    command += ["--base", str(base), "--data-dir", str(data_dir), "--port", "0"]
    command += ["--no-metrics", "--bridge-port", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing-sessions"])
def test_a_read_only_data_directory_is_refused_at_start(
    existing, tmp_path, trained_cast_dir, tiny_base
):
    with small_filesystem(tmp_path / "disk", "4m") as root:
        data = root / "data"
        if existing:
            data.mkdir()
            db = sqlite3.connect(data / "sessions.sqlite3")
            db.execute("CREATE TABLE keep (x)")
            db.close()
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        files = sorted(p.name for p in data.iterdir()) if existing else []
        result = serve(trained_cast_dir, tiny_base, data)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()[-1:]
        assert line.startswith("npc-runtime: error: ") and str(data) in line
        assert "not writable" in line and "--data-dir" in line
        assert "Traceback" not in result.stderr
        assert (sorted(p.name for p in data.iterdir()) if existing else []) == files
