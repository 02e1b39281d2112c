"""The daemon's life as a game sees it: one daemon per data directory, readiness said in
one JSON line (and a file) once it can serve, shut down when the game's process ends,
and start-up failures as one JSON line with a stable code.

A game starts `npc-runtime serve --port 0 --parent-pid <its pid>` and reads stdout: the
first line is JSON, either {"event": "ready", ...ports...} or {"event": "error", "code":
...}; nothing is announced before the daemon serves.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from .. import __version__

LOCK_NAME = "daemon.lock"

# Stable codes of the start-up errors a game must handle (the JSON line's "code").
PORT_IN_USE = "port_in_use"
DATA_DIR_LOCKED = "data_dir_locked"
DATA_DIR_UNWRITABLE = "data_dir_unwritable"
SESSIONS_DAMAGED = "sessions_damaged"
CAST_DAMAGED = "cast_damaged"
MODEL_MISSING = "model_missing"
BAD_OPTION = "bad_option"


class StartupError(Exception):
    """The daemon cannot start; `code` is one of the constants above."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class DataDirLock:
    """An exclusive lock on DATA_DIR/daemon.lock for the daemon's life, holding its pid:
    two daemons on one session database would each think they own it."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_NAME
        self._file = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; one daemon is the game's job
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="ascii")  # noqa: SIM115 - held till release
        except OSError as exc:
            raise StartupError(
                DATA_DIR_UNWRITABLE,
                f"{self.path.parent}: cannot write in the data directory ({exc.strerror}); the "
                "folder is not writable: fix its permissions or choose another data directory "
                "(--data-dir or $NPC_RUNTIME_DATA)",
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StartupError(
                DATA_DIR_LOCKED,
                f"the data directory {self.path.parent} is in use by another npc-runtime "
                f"serve (pid {holder}): one daemon per data directory; stop it or choose "
                "another --data-dir",
            ) from None
        os.chmod(self.path, 0o600)
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock
            self._file = None


def ready_record(daemon) -> dict[str, Any]:
    config = daemon.config
    return {
        "event": "ready",
        "pid": os.getpid(),
        "version": __version__,
        "host": config.host,
        "port": daemon.port,
        "bridge_port": daemon.bridge_port,
        "metrics_port": daemon.metrics_port,
        "npc_count": len(daemon.service.cast.npcs),
        "data_dir": str(config.data_dir),
    }


def announce(record: dict[str, Any], ready_file: Path | None) -> None:
    """One JSON line on stdout, and the same object in ready_file (written whole: a
    reader never sees half of it). A start-up error goes there too, so that a game that
    cannot read the daemon's stdout (Godot's OS.create_process) learns its code."""
    line = json.dumps(record, ensure_ascii=False)
    if ready_file is not None:  # first: a reader of stdout may look for it next
        try:
            tmp = ready_file.with_name(f".{ready_file.name}.tmp")
            tmp.write_text(line + "\n", encoding="utf-8")
            os.replace(tmp, ready_file)
        except OSError as exc:
            if record["event"] == "ready":
                raise StartupError(
                    BAD_OPTION, f"cannot write the ready file {ready_file}: {exc}"
                ) from None
    print(line, flush=True)


def error_record(code: str, message: str) -> dict[str, Any]:
    return {"event": "error", "code": code, "message": message}


async def parent_exit(pid: int) -> None:
    """Return once process `pid` has exited, however it exited (a crash included)."""
    loop = asyncio.get_running_loop()
    if hasattr(os, "pidfd_open"):  # Linux: told by the kernel, no polling, no pid reuse
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        gone = asyncio.Event()
        loop.add_reader(fd, gone.set)
        try:
            await gone.wait()
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        return
    while _alive(pid):
        await asyncio.sleep(0.5)


async def stdin_closed() -> None:
    """Return once standard input reaches its end: the game closed its end of the pipe,
    or died (the pipe closes with it, on every OS). The game's way to stop the daemon
    cleanly without signals, which Windows and Mono's Process lack."""
    closed = asyncio.get_running_loop().create_future()

    def read() -> None:
        try:
            while os.read(0, 65536):
                pass
        except OSError:  # no standard input at all: as good as closed
            pass
        closed.get_loop().call_soon_threadsafe(lambda: closed.done() or closed.set_result(None))

    threading.Thread(target=read, name="stdin-watch", daemon=True).start()
    await closed


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it on Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_secret(path: str | None, what: str) -> str | None:
    """A token from a file (its first line), so it never shows in `ps` as argv does."""
    if path is None:
        return None
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise StartupError(BAD_OPTION, f"cannot read {what} {path}: {exc}") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise StartupError(BAD_OPTION, f"{what} {path} is empty")
    return token
