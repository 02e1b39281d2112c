"""The daemon's settings: limits of the service, and where it listens."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.api import EngineConfig
from .auth import AuthPolicy

DEFAULT_PORT = 50051
DEFAULT_BRIDGE_PORT = 50052
# Like the gRPC receive limit: ExpandNpc carries its training records in one message.
DEFAULT_MAX_FRAME_BYTES = 32 * 2**20


def default_data_dir() -> Path:
    """$NPC_RUNTIME_DATA, else the XDG data folder (~/.local/share/npc-runtime)."""
    if os.environ.get("NPC_RUNTIME_DATA"):
        return Path(os.environ["NPC_RUNTIME_DATA"])
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg) / "npc-runtime"


@dataclass(frozen=True)
class ServiceConfig:
    """Limits that turn requests away with INVALID_ARGUMENT or RESOURCE_EXHAUSTED.

    max_history_turns is how much of a session is offered to the engine per reply (from a
    turn whose place is a multiple of HISTORY_CHUNK, so consecutive replies share a cached
    prefix); the engine then drops the oldest of those turns, a chunk at a time, until the
    prompt fits the model's context (the NPC's profile and the player's line never leave),
    so it only bounds the work of building a prompt.
    """

    max_text_bytes: int = 4096
    max_streams: int = 32
    max_history_turns: int = 64
    max_expand_records: int = 10_000
    max_npcs: int = 1000
    max_sessions: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_text_bytes", "max_streams", "max_history_turns", "max_npcs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_sessions < 1 or self.max_expand_records < 1:
            raise ValueError("max_sessions and max_expand_records must be at least 1")


@dataclass(frozen=True)
class ServerConfig:
    cast: Path
    data_dir: Path = field(default_factory=default_data_dir)
    base: str | None = None
    device: str = "cpu"
    dtype: str = "auto"  # base model precision (base_model.resolve_dtype)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    auth: AuthPolicy = AuthPolicy()
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no metrics endpoint (a player's PC); 0: free
    bridge_port: int | None = DEFAULT_BRIDGE_PORT  # None: no engine bridge (WebSocket)
    bridge_max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    bridge_origins: tuple[str, ...] = ()  # browser Origins allowed on the bridge
    bridge_max_connections: int = 64
    # A stream (or bridge connection) whose client reads nothing for this long is ended,
    # so a client that stops reading cannot hold a session, a stream slot or memory.
    stream_idle_seconds: float = 60.0
    # A reply's tokens reach its stream at most this often, merged (its first token and
    # its end at once): engine/tickets.py. 0: every decode step's.
    stream_interval_seconds: float = 0.02
    max_rpcs: int = 256  # gRPC calls in progress at once, over all connections
    service: ServiceConfig = ServiceConfig()
    grace_seconds: float = 5.0
    # Lore files (neeko/lore.py); None: the cast folder's lore/, when there is one.
    lore: Path | None = None

    def __post_init__(self) -> None:
        if self.bridge_max_connections < 1 or self.max_rpcs < 1:
            raise ValueError("bridge_max_connections and max_rpcs must be at least 1")
        if not self.stream_idle_seconds > 0:
            raise ValueError("stream_idle_seconds must be more than 0")
        # The engine's rule, checked now: before the model loads, not after.
        EngineConfig(stream_interval_s=self.stream_interval_seconds)

    @property
    def lore_folder(self) -> Path | None:
        if self.lore is not None:
            return self.lore
        default = self.cast / "lore"
        return default if default.is_dir() else None

    @property
    def sessions_path(self) -> Path:
        return self.data_dir / "sessions.sqlite3"
