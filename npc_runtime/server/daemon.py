"""One running daemon: the cast and engine, the session store, the gRPC server with the
health and reflection services, the engine bridge (WebSocket) and the metrics endpoint;
started and stopped as one."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..engine import Engine, EngineConfig
from ..engine.threads import leave_cores_to_engine, passing_future, set_threads
from ..neeko.lore import load_lore
from ..neeko.store import load_cast, verify_cast
from ..sessions import SessionStore
from ..v1 import npc_runtime_pb2 as pb
from .bridge import MAX_CALLS_PER_CONNECTION, Bridge
from .config import ServerConfig
from .door import DoorCore
from .grpc_api import GrpcDoor
from .lifecycle import (
    PORT_IN_USE,
    DataDirLock,
    StartupError,
    announce,
    parent_exit,
    ready_record,
    stdin_closed,
)
from .logs import RedactSecrets, redact_root_handlers, remove_from_root_handlers
from .service import NpcService

log = logging.getLogger("npc_runtime.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["NpcRuntime"].full_name
# ExpandNpc carries its training records in one message.
MAX_MESSAGE_BYTES = 32 * 2**20


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _make_private(folder: Path) -> None:
    """The data directory for its owner only (0700): sessions are a player's own. A
    folder shared on purpose (sticky, like /tmp) or someone else's is left as it is."""
    try:
        info = folder.stat()
    except FileNotFoundError:
        return  # the session store creates it, 0700
    except OSError:
        return  # the session store says what is wrong with it
    mode = stat.S_IMODE(info.st_mode)
    mine = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    if mode & 0o077 and mine and not mode & stat.S_ISVTX:
        try:
            os.chmod(folder, mode & 0o700)
        except OSError:
            return  # a read-only disk: the session store says so, with what to do
        log.info("made the data directory %s private to its owner (was %o)", folder, mode)


def _check_ports(config: ServerConfig) -> None:
    """Every port asked for is free, before the model loads (which takes seconds): a port
    in use is one line naming it and the option that moves it."""
    ports = [("--port", config.port), ("--bridge-port", config.bridge_port)]
    ports.append(("--metrics-port", config.metrics_port))
    for option, port in ports:
        if not port:
            continue
        host = config.metrics_host if option == "--metrics-port" else config.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As the servers do: a port left in TIME_WAIT by a daemon just stopped is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host.strip("[]"), port))
            except OSError as exc:
                raise StartupError(
                    PORT_IN_USE,
                    f"cannot listen on {_address(host, port)} ({option}): {exc.strerror}; "
                    "is another npc-runtime serve running? Stop it or choose another "
                    f"{option}",
                ) from None


class Daemon:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.bridge_port: int | None = None
        self.service: NpcService | None = None
        self._engine: Engine | None = None
        self._store: SessionStore | None = None
        self._server: grpc.aio.Server | None = None
        self._bridge: Bridge | None = None
        self._health = health.aio.HealthServicer()
        self._metrics_http = None
        self._redact: RedactSecrets | None = None
        self._lock = DataDirLock(config.data_dir)
        self._give_back_cores = lambda: None

    async def start(self) -> None:
        """Load everything, then listen; raises before listening if anything is wrong.

        Only the engine's decode thread computes on every core while serving (see
        engine/threads.py): the model loads in a thread that ends with it, and the event
        loop and its worker threads compute on one thread each."""
        config = self.config
        cores = torch.get_num_threads()
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(initializer=set_threads, initargs=(1,))
        )
        config.auth.check_bind(config.host)
        self._redact = redact_root_handlers(
            (config.auth.token or "", config.auth.admin_token or "")
        )
        # A damaged cast or an unwritable data directory fails in a moment, not after
        # the model has loaded; and the cast first, so it leaves no data directory behind.
        await asyncio.to_thread(verify_cast, config.cast)
        self._lock.acquire()
        _check_ports(config)
        _make_private(config.data_dir)
        self._store = SessionStore(config.sessions_path)
        log.info("loading cast %s", config.cast)
        cast = await passing_future(
            lambda: load_cast(config.cast, config.base, config.device, config.dtype), cores
        )
        await passing_future(lambda: cast.encoder, cores)  # so the first RegisterNpc is quick
        lore = await passing_future(lambda: load_lore(config.lore_folder, cast.encoder), cores)
        limits = config.service
        engine = Engine(
            cast,
            EngineConfig(
                max_active=min(16, limits.max_streams),
                max_queued=limits.max_streams,
                stream_interval_s=config.stream_interval_seconds,
            ),
        )
        await engine.start()
        self._engine = engine
        self._give_back_cores = leave_cores_to_engine()
        self.service = NpcService(
            cast, engine, self._store, limits, engine.config.max_tokens_limit, lore
        )
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
                ("grpc.max_concurrent_streams", MAX_CALLS_PER_CONNECTION),
            ],
            # Every call in progress may hold its reply until the client reads it.
            maximum_concurrent_rpcs=config.max_rpcs,
        )
        core = DoorCore(self.service, config.auth, config.stream_idle_seconds)
        GrpcDoor(core).add_to(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        self.port = server.add_insecure_port(_address(config.host, config.port))
        if not self.port:
            raise OSError(f"cannot listen on {_address(config.host, config.port)}")
        await server.start()
        self._server = server
        if config.bridge_port is not None:
            self._bridge = Bridge(
                core,
                config.host,
                config.bridge_port,
                config.bridge_max_frame_bytes,
                config.bridge_origins,
                config.bridge_max_connections,
            )
            self.bridge_port = await self._bridge.start()
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if config.metrics_port is not None:
            self._metrics_http = self.service.metrics.serve_http(
                config.metrics_host, config.metrics_port
            )
            self.metrics_port = self._metrics_http.server_port
        log.info(
            "serving %d NPCs of %s on %s (%s, %s, %s weights, %s kernels)%s; sessions in %s",
            len(cast.npcs),
            config.cast,
            _address(config.host, self.port),
            cast.base.name,
            config.device,
            cast.base.dtype,
            getattr(engine.runner, "kernel", "transformers"),
            f", metrics on http://{_address(config.metrics_host, self.metrics_port)}/metrics"
            if self.metrics_port
            else "",
            config.sessions_path,
        )
        if self.bridge_port:
            log.info("engine bridge on ws://%s", _address(config.host, self.bridge_port))

    async def stop(self) -> None:
        """Refuse new replies, let those in flight finish for the grace period (cancel the
        rest), then stop the engine and close the store."""
        if self.service is not None:
            self.service.closing = True
        await self._health.enter_graceful_shutdown()
        grace = self.config.grace_seconds
        doors = [self._server.stop(grace)] if self._server is not None else []
        if self._bridge is not None:
            doors.append(self._bridge.stop(grace))
        await asyncio.gather(*doors)
        if self.service is not None:
            await self.service.memory.close()
        if self._engine is not None:
            await self._engine.stop()
        if self._store is not None:
            self._store.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
        log.info("stopped")
        self._give_back_cores()
        self._lock.release()
        if self._redact is not None:
            remove_from_root_handlers(self._redact)


async def serve(
    config: ServerConfig,
    ready_file: Path | None = None,
    parent_pid: int | None = None,
    stop_on_stdin_close: bool = False,
) -> None:
    """Run until SIGTERM or SIGINT, until process parent_pid exits, or (when asked) until
    standard input closes, then shut down gracefully. Once serving, announce readiness:
    one JSON line on stdout (and in ready_file)."""
    daemon = Daemon(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watches: dict[asyncio.Future, str] = {}
    if parent_pid is not None:
        watches[asyncio.ensure_future(parent_exit(parent_pid))] = f"process {parent_pid} has exited"
    if stop_on_stdin_close:
        watches[asyncio.ensure_future(stdin_closed())] = "standard input closed"
    for watch in watches:
        watch.add_done_callback(lambda _: stop.set())
    try:
        await daemon.start()
        announce(ready_record(daemon), ready_file)
        await stop.wait()
        for watch, why in watches.items():
            if watch.done():
                log.info("%s: shutting down", why)
        log.info("shutting down (grace %.0f s)", config.grace_seconds)
    finally:
        for watch in watches:
            watch.cancel()
        await daemon.stop()
