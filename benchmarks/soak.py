"""Soak test: many concurrent clients against a real `npc-runtime serve` process.

    python benchmarks/soak.py [--clients 32] [--minutes 10] [--cast DIR] [--base PATH]
        [--seed 0] [--max-tokens 4 40] [--threads N] [--max-streams N] [--keep] [--json F]

It starts the daemon itself (free ports, a temporary data dir, a copy of the cast, since
RegisterNpc writes into the cast folder), then runs the clients as asyncio tasks: half
over gRPC, half over the engine bridge (half of those JSON text frames, half msgpack).
Each speaks to random NPCs in its own sessions and now and then in one it shares with a
neighbour, with random max_tokens and seeds, and reads the reply to its Final, cancels
it after a few tokens (Cancel RPC, or the bridge's cancel frame) or drops the connection
abruptly (gRPC: cancel the call or close the channel; bridge: abort the TCP connection).

After the deadline the in-flight replies finish, every session touched is read back
through GetSession and compared with what the clients saw (soak_clients.verify), and
GetStatus must show no stream left. Expected errors: CANCELLED for the client's own
cancellations, FAILED_PRECONDITION on a busy session (shared, or one whose dropped reply
the server is still ending), NOT_FOUND from a Cancel that came after the reply ended,
and RESOURCE_EXHAUSTED only when --max-streams is below --clients (by default it is
twice the clients, as dropped streams take a moment to end on the server). Anything
else, a lost or duplicated turn, a turn stored against the client's word, a leftover
stream or a server that does not stop cleanly makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from soak_clients import BridgeDoor, Client, Exchange, GrpcDoor, Settings, Stats, to_dict, verify

import npc_runtime
from npc_runtime.v1 import npc_runtime_pb2 as pb
from npc_runtime.v1 import npc_runtime_pb2_grpc as pb_grpc

BUNDLED_CAST = Path(npc_runtime.__file__).parent / "assets" / "village" / "cast"


def _free_ports(count: int) -> list[int]:
    """Held open together, so the ports differ."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Server:
    """One `npc-runtime serve` process; its output goes to DATA_DIR/server.log."""

    def __init__(self, cast: Path, base: str | None, data_dir: Path, args: argparse.Namespace):
        data_dir.mkdir(parents=True)
        self.port, self.bridge_port = _free_ports(2)
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        command = [sys.executable, "-m", "npc_runtime.cli", "serve", "--cast", str(cast)]
        command += ["--data-dir", str(data_dir), "--port", str(self.port), "--no-metrics"]
        command += ["--bridge-port", str(self.bridge_port), "--max-streams", str(args.max_streams)]
        command += ["--base", base] if base else []
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        if args.threads:
            env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.proc.returncode}")
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"the server was not serving after {timeout:.0f} s")

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM (peak) in MiB, from /proc."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
        return out

    def stop(self) -> int | None:
        """SIGTERM, as an operator would; None if it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def tail(self, lines: int = 50) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


async def _stored_sessions(stub: pb_grpc.NpcRuntimeStub, sessions: set[str]) -> dict[str, list]:
    out: dict[str, list[dict[str, Any]]] = {}
    for session in sorted(sessions):
        try:
            record = await stub.GetSession(pb.GetSessionRequest(session_id=session, max_turns=0))
            out[session] = to_dict(record)["turns"]
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            out[session] = []  # nothing ever stored there
    return out


async def _settled_status(stub: pb_grpc.NpcRuntimeStub, timeout: float = 15.0) -> pb.Status:
    """Dropped streams end on the server a moment after the client leaves: wait a little."""
    end = time.monotonic() + timeout
    while True:
        status = await stub.GetStatus(pb.GetStatusRequest())
        idle = status.active_streams == 0 and status.queued == 0
        if idle or time.monotonic() > end:
            return status
        await asyncio.sleep(0.2)


async def soak(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    memory_start = server.memory()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.NpcRuntimeStub(channel)
        npcs = [n.profile.id for n in (await stub.ListNpcs(pb.ListNpcsRequest())).npcs]
        clients = []
        for i in range(args.clients):
            if i % 2 == 0:
                door: GrpcDoor | BridgeDoor = GrpcDoor(server.address, f"{args.seed}-{i}")
            else:
                door = BridgeDoor(f"ws://127.0.0.1:{server.bridge_port}", binary=i % 4 == 3)
            partner = i ^ 1
            shared = f"shared-{i // 2}" if partner < args.clients else ""
            clients.append(Client(i, door, npcs, shared, args.seed))
        started = time.monotonic()
        settings = Settings(
            started + args.minutes * 60,
            tuple(args.max_tokens),
            args.call_timeout,
            args.max_streams < args.clients,
        )
        ledger: dict[str, Exchange] = {}
        stats = Stats()

        async def watchdog() -> None:  # a dead server ends the run at once
            while server.proc.poll() is None:
                await asyncio.sleep(0.5)
            settings.deadline = 0.0

        dog = asyncio.create_task(watchdog())
        await asyncio.gather(*(c.run(settings, ledger, stats) for c in clients))
        dog.cancel()
        duration = time.monotonic() - started
        status = await _settled_status(stub)  # dropped replies stored by now, if ever
        stored = await _stored_sessions(stub, {ex.session_id for ex in ledger.values()})
        verdict = verify(stored, ledger)
    ttft = sorted(stats.ttft)
    return {
        "seconds": duration,
        "clients": {"grpc": len(clients[::2]), "bridge": len(clients[1::2])}
        | {"msgpack": len(clients[3::4]), "npcs": len(npcs)},
        "speak": sum(stats.outcomes.values()),
        "outcomes": dict(stats.outcomes),
        "calls": dict(stats.calls),
        "expected_errors": {c: n for (c, ok), n in stats.errors.items() if ok},
        "unexpected_errors": {c: n for (c, ok), n in stats.errors.items() if not ok},
        "problems": stats.problems + verdict.problems,
        "ttft_p50": statistics.median(ttft) if ttft else None,
        "ttft_p99": ttft[min(len(ttft) - 1, int(0.99 * len(ttft)))] if ttft else None,
        "tokens": stats.tokens,
        "tokens_per_second": stats.tokens / duration,
        "memory_start": memory_start,
        "memory_end": server.memory(),
        "verify": {k: getattr(verdict, k) for k in ("sessions", "turns", "lost", "duplicated")}
        | {"unexpected": verdict.unexpected},
        "active_streams": status.active_streams,
        "queued": status.queued,
        "cache_mib": [status.cache_bytes / 2**20, status.cache_budget_bytes / 2**20],
    }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def _print(report: dict[str, Any]) -> None:
    c, v, m0, m1 = report["clients"], report["verify"], report["memory_start"], report["memory_end"]
    ms = lambda s: "-" if s is None else f"{s * 1000:.0f} ms"  # noqa: E731
    print(f"duration   {report['seconds']:.0f} s, {c['grpc'] + c['bridge']} clients ", end="")
    print(f"({c['grpc']} gRPC, {c['bridge']} bridge of which {c['msgpack']} msgpack), ", end="")
    print(f"{c['npcs']} NPCs")
    print(f"speak      {report['speak']}: {_counts(report['outcomes'])}")
    print(f"other      {_counts(report['calls'])}")
    print(f"errors     expected: {_counts(report['expected_errors'])}")
    print(f"           unexpected: {_counts(report['unexpected_errors'])}")
    print(f"ttft       p50 {ms(report['ttft_p50'])}, p99 {ms(report['ttft_p99'])}")
    print(f"tokens     {report['tokens']} received, {report['tokens_per_second']:.1f} tokens/s")
    print(f"server rss start {m0['VmRSS']:.0f} MiB, end {m1['VmRSS']:.0f} MiB, ", end="")
    print(f"peak {m1['VmHWM']:.0f} MiB")
    print(f"verify     {v['sessions']} sessions, {v['turns']} turns: lost {v['lost']}, ", end="")
    print(f"duplicated {v['duplicated']}, unexpected {v['unexpected']}")
    print(
        f"after      active_streams {report['active_streams']}, queued {report['queued']}, ", end=""
    )
    print("prefix cache {:.0f} of {:.0f} MiB".format(*report["cache_mib"]))
    for problem in report["problems"][:40]:
        print(f"  ! {problem}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    p.add_argument("--cast", type=Path, default=BUNDLED_CAST, help="default: the village cast")
    p.add_argument("--base", help="base model (default: the cast's, the embedded model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, nargs=2, default=[4, 40], metavar=("MIN", "MAX"))
    p.add_argument("--threads", type=int, help="torch threads of the server (OMP_NUM_THREADS)")
    p.add_argument("--max-streams", type=int, help="the server's (default: 2 x clients)")
    p.add_argument("--call-timeout", type=float, default=300.0, help="seconds per Speak")
    p.add_argument("--start-timeout", type=float, default=300.0)
    p.add_argument("--keep", action="store_true", help="keep the data dir (log, sessions)")
    p.add_argument("--json", type=Path, help="also write the report here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.max_streams = args.max_streams or 2 * args.clients
    tmp = Path(tempfile.mkdtemp(prefix="npc-soak-"))
    shutil.copytree(args.cast, tmp / "cast")
    server = Server(tmp / "cast", args.base, tmp / "data", args)
    report: dict[str, Any] = {}
    try:
        server.wait_ready(args.start_timeout)
        print(f"server pid {server.proc.pid} on {server.address}, data in {tmp}", flush=True)
        report = asyncio.run(soak(args, server))
    except Exception as exc:  # the report says what went wrong; the log says why
        report["problems"] = [f"soak failed: {type(exc).__name__}: {exc}"]
    finally:
        report["server_exit"] = server.stop()
    if "verify" in report:
        _print(report)
    failed = (
        "verify" not in report
        or bool(report["unexpected_errors"])
        or any(report["verify"][k] for k in ("lost", "duplicated", "unexpected"))
        or report["active_streams"] != 0
        or report["queued"] != 0
        or report["server_exit"] != 0
    )
    print(f"server exit {report['server_exit']}; result {'FAILED' if failed else 'OK'}")
    if failed:
        for problem in report.get("problems", [])[:40] if "verify" not in report else []:
            print(f"  ! {problem}")
        print(f"--- last 50 lines of {server.log_path}\n{server.tail()}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
