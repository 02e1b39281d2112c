"""A real daemon on loopback, in a thread of the test process, and its clients."""

from __future__ import annotations

import asyncio
import shutil
import threading
from dataclasses import replace
from pathlib import Path

from npc_runtime.client import NpcClient
from npc_runtime.server.config import ServerConfig
from npc_runtime.server.daemon import Daemon
from npc_runtime.sessions import NPC, PLAYER, NewTurn, SessionStore

ADMIN = "admin-secret"
TOKEN = "client-secret"


class ServerThread:
    """Runs Daemon.start() on an event loop of its own; stop() shuts it down gracefully."""

    def __init__(self, config: ServerConfig):
        self.daemon = Daemon(config)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.daemon.start())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(120)
        if self._error is not None:
            raise self._error
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.daemon.port}"

    @property
    def bridge_url(self) -> str:
        return f"ws://127.0.0.1:{self.daemon.bridge_port}"

    def call(self, coro):
        """Run a coroutine on the server's loop (to reach its state safely)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def client(self, **kw) -> NpcClient:
        return NpcClient(self.address, **kw)

    def stop(self) -> None:
        if self._error is None:
            self.call(self.daemon.stop())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)


def server_config(cast_dir: Path, tmp: Path, base: Path | None, **changes) -> ServerConfig:
    """A config serving a private copy of cast_dir (tests change the cast) on a free port."""
    cast = tmp / "cast"
    if not cast.exists():
        shutil.copytree(cast_dir, cast)
    config = ServerConfig(
        cast=cast,
        data_dir=tmp / "data",
        base=str(base) if base else None,
        port=0,
        metrics_port=0,
        bridge_port=0,
        grace_seconds=1.0,
    )
    return replace(config, **changes)


def store_exchanges(config: ServerConfig, session_id: str, count: int, player, reply) -> None:
    """`count` exchanges (player(i), then brann's reply(i)) stored before a daemon starts,
    so a test has a long session at once."""
    store = SessionStore(config.sessions_path)
    for i in range(count):
        pair = [NewTurn(PLAYER, "", "Player", player(i)), NewTurn(NPC, "brann", "B", reply(i))]
        store.append(session_id, f"r{i}", pair)
    store.close()
