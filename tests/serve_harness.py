"""`npc-runtime serve` as a real process, for tests that kill it or watch it start."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from server_harness_streams import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """One `npc-runtime serve` process, its output in data_dir/server.log."""

    started: list[Serve] = []  # so a failing test leaves no daemon behind

    def __init__(self, cast: Path, base: Path, data_dir: Path, port: int, *extra: str):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "server.log"
        self.address = f"127.0.0.1:{port}"
        command = [sys.executable, "-m", "npc_runtime.cli", "serve", "--cast", str(cast)]
        command += ["--base", str(base), "--data-dir", str(data_dir), "--port", str(port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command + ["--no-metrics", "--bridge-port", "0", *extra],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        Serve.started.append(self)
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

    @classmethod
    def kill_all(cls) -> None:
        for server in cls.started:
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait(30)
        cls.started.clear()
