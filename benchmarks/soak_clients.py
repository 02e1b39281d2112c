"""The soak's clients (gRPC and engine-bridge doors), its ledger and its verification.

Every client keeps a ledger of what it knows for sure about each Speak it sent: replies
it saw stored (Final, stored=true), replies it saw cancelled or refused (never stored),
and replies it walked away from (stored at most once, whole). After the run the stored
sessions are checked against that ledger: a turn the daemon lost, stored twice or stored
against its word is a bug, whatever the timing was.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
import msgpack
from google.protobuf import json_format
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from npc_runtime.v1 import npc_runtime_pb2 as pb
from npc_runtime.v1 import npc_runtime_pb2_grpc as pb_grpc

LINES = (
    "Can you mend my sword?",
    "What news from the road?",
    "Is the ale any good tonight?",
    "Have you seen a grey cat?",
    "Tell me about the old mill.",
    "Where does the river go?",
)
# Ledger states. REFUSED and FAILED must never be stored; UNKNOWN at most once.
COMPLETED, CANCELLED, UNKNOWN, REFUSED, FAILED = (
    "completed",
    "cancelled",
    "unknown",
    "refused",
    "failed",
)
DONE_REASONS = ("FINISH_REASON_STOP", "FINISH_REASON_LENGTH")
# The service names the request that holds a busy session: "(request c03-n12)".
BUSY_WITH = re.compile(r"\(request ([\w-]+)\)")


class CallError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def to_dict(message: Any) -> dict[str, Any]:
    """gRPC replies in the bridge's shape (proto3 JSON mapping), so both doors compare."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


@dataclass
class Exchange:
    """One Speak as its client knows it: the ledger entry stored turns are checked with."""

    request_id: str
    session_id: str
    client: int
    order: int
    npc_id: str
    text: str
    state: str = UNKNOWN  # until the client has seen how it ended
    reply: str = ""


@dataclass
class Reply:
    """How one Speak stream went, seen from the client; `action` ("read", "cancel",
    "drop") is done once `after` tokens have arrived (0: right after Started)."""

    action: str
    after: int
    sent: float = field(default_factory=time.perf_counter)
    started: bool = False
    acted: bool = False
    final: dict[str, Any] | None = None
    error: tuple[str, str] | None = None
    dropped: bool = False
    cancel_refused: str | None = None  # the Cancel RPC's status when it came too late
    token_events: int = 0
    tokens: int = 0
    ttft: float | None = None

    def see(self, event: dict[str, Any]) -> None:
        if "started" in event:
            self.started = True
        elif "token" in event:
            self.token_events += 1
            self.tokens += len(event["token"].get("token_ids", ()))
            if self.ttft is None:
                self.ttft = time.perf_counter() - self.sent
        elif "final" in event:
            self.final = event["final"]

    def due(self) -> bool:
        due = self.action != "read" and not self.acted and self.final is None
        return due and self.started and self.token_events >= self.after


class GrpcDoor:
    """grpc.aio with the generated stub; a drop cancels the call or closes the channel."""

    kind = "grpc"

    def __init__(self, address: str, seed: str):
        self.address, self.rng = address, random.Random(seed)
        self._open()

    def _open(self) -> None:
        self.channel = grpc.aio.insecure_channel(self.address)
        self.stub = pb_grpc.NpcRuntimeStub(self.channel)

    async def reset(self) -> None:
        await self.channel.close()
        self._open()

    async def close(self) -> None:
        await self.channel.close()

    async def unary(self, method: str, request: dict[str, Any]) -> dict[str, Any]:
        message = json_format.ParseDict(request, getattr(pb, f"{method}Request")())
        try:
            return to_dict(await getattr(self.stub, method)(message))
        except grpc.aio.AioRpcError as exc:
            raise CallError(exc.code().name, exc.details() or "") from None

    async def speak(self, request: dict[str, Any], reply: Reply) -> Reply:
        call = self.stub.Speak(json_format.ParseDict(request, pb.SpeakRequest()))
        try:
            async for message in call:
                reply.see(to_dict(message))
                if not reply.due():
                    continue
                reply.acted = True
                if reply.action == "cancel":
                    try:
                        await self.stub.Cancel(pb.CancelRequest(request_id=request["request_id"]))
                    except grpc.aio.AioRpcError as exc:
                        reply.cancel_refused = exc.code().name
                    continue
                reply.dropped = True
                if self.rng.random() < 0.5:
                    call.cancel()
                else:
                    await self.reset()
                return reply
        except grpc.aio.AioRpcError as exc:
            reply.error = (exc.code().name, exc.details() or "")
        return reply


class BridgeDoor:
    """One WebSocket connection, JSON text or msgpack binary frames; a drop aborts the
    TCP connection without a close handshake, and the next call reconnects."""

    kind = "bridge"

    def __init__(self, url: str, binary: bool):
        self.url, self.binary = url, binary
        self.ws: ClientConnection | None = None
        self.ids = 0

    async def reset(self) -> None:
        if self.ws is not None:
            self.ws.transport.abort()
            self.ws = None

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def _send(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        await ws.send(msgpack.packb(frame) if self.binary else json.dumps(frame))

    async def _call(self, method: str, request: dict[str, Any]) -> tuple[str, ClientConnection]:
        if self.ws is None:
            self.ws = await connect(self.url, compression=None, max_size=2**25)
        self.ids += 1
        await self._send(self.ws, {"id": str(self.ids), "method": method, "request": request})
        return str(self.ids), self.ws

    async def _frames(self, call_id: str, ws: ClientConnection):
        while True:
            data = await ws.recv()
            if isinstance(data, bytes) != self.binary:
                raise CallError("BRIDGE_CODEC", "a reply in the other codec than its request")
            frame = msgpack.unpackb(data) if self.binary else json.loads(data)
            if frame.get("id") != call_id:
                raise CallError("BRIDGE_ID", f"frame for id {frame.get('id')!r}, not {call_id!r}")
            yield frame
            if frame.get("done"):
                return

    async def unary(self, method: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            call_id, ws = await self._call(method, request)
            async for frame in self._frames(call_id, ws):
                if "error" in frame:
                    raise CallError(frame["error"]["code"], frame["error"]["message"])
                if "response" in frame:
                    return frame["response"]
        except (WebSocketException, OSError) as exc:
            self.ws = None
            raise CallError("BRIDGE_CLOSED", str(exc)) from None
        raise CallError("BRIDGE_DONE", "done without a response")

    async def speak(self, request: dict[str, Any], reply: Reply) -> Reply:
        try:
            call_id, ws = await self._call("Speak", request)
            async for frame in self._frames(call_id, ws):
                if "event" in frame:
                    reply.see(frame["event"])
                if "error" in frame:
                    reply.error = (frame["error"]["code"], frame["error"]["message"])
                if reply.due():
                    reply.acted = True
                    if reply.action == "cancel":
                        await self._send(ws, {"id": call_id, "cancel": True})
                    else:
                        reply.dropped = True
                        await self.reset()
                        return reply
        except CallError as exc:
            reply.error = (exc.code, exc.message)
        except (WebSocketException, OSError) as exc:
            self.ws = None
            reply.error = ("BRIDGE_CLOSED", str(exc))
        return reply


@dataclass
class Stats:
    outcomes: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[tuple[str, bool]] = field(default_factory=Counter)  # (code, expected)
    ttft: list[float] = field(default_factory=list)
    tokens: int = 0
    problems: list[str] = field(default_factory=list)

    def error(self, code: str, expected: bool, detail: str) -> None:
        self.errors[code, expected] += 1
        if not expected:
            self.problems.append(detail)


@dataclass
class Settings:
    deadline: float
    max_tokens: tuple[int, int]
    call_timeout: float
    exhaustion_expected: bool  # more clients than --max-streams


class Client:
    """Speaks in a loop until the deadline: its own sessions (never busy from another
    client), now and then the session it shares with its neighbour, where one reply at
    a time per session makes FAILED_PRECONDITION an expected answer."""

    def __init__(
        self, index: int, door: GrpcDoor | BridgeDoor, npcs: list[str], shared: str, seed: int
    ):
        self.index, self.door, self.npcs, self.shared = index, door, npcs, shared
        self.rng = random.Random(f"{seed}-{index}")
        self.sessions = [f"s{index:02d}-{j}" for j in range(3)]
        self.count = 0
        self.dropped: set[str] = set()  # request ids walked away from
        self.completed_in: set[str] = set()

    async def run(self, settings: Settings, ledger: dict[str, Exchange], stats: Stats) -> None:
        while time.monotonic() < settings.deadline:
            if self.rng.random() < 0.05:
                await self.poll(settings, stats)
            else:
                await self.speak(settings, ledger, stats)
        await self.door.close()

    async def poll(self, settings: Settings, stats: Stats) -> None:
        method = self.rng.choice(["GetSession", "ListNpcs", "GetStatus"])
        session = self.rng.choice(self.sessions)
        request = {"session_id": session} if method == "GetSession" else {}
        stats.calls[method] += 1
        try:
            async with asyncio.timeout(settings.call_timeout):
                await self.door.unary(method, request)
        except TimeoutError:
            await self.door.reset()
            stats.error("CLIENT_TIMEOUT", False, f"c{self.index:02d} {method}: no answer")
        except CallError as exc:
            # A session with no reply seen stored may still have none.
            expected = exc.code == "NOT_FOUND" and session not in self.completed_in
            stats.error(f"{method}:{exc.code}", expected, f"c{self.index:02d} {method}: {exc}")

    async def speak(self, settings: Settings, ledger: dict[str, Exchange], stats: Stats) -> None:
        rng = self.rng
        self.count += 1
        rid = f"c{self.index:02d}-n{self.count}"
        session = self.shared if self.shared and rng.random() < 0.2 else rng.choice(self.sessions)
        npc = rng.choice(self.npcs)
        ex = Exchange(rid, session, self.index, self.count, npc, f"{rid}: {rng.choice(LINES)}")
        ledger[rid] = ex
        request = {
            "npc_id": npc,
            "session_id": session,
            "text": ex.text,
            "request_id": rid,
            "sampling": {
                "max_tokens": rng.randint(*settings.max_tokens),
                "seed": rng.getrandbits(31),
            },
        }
        action = rng.choices(["read", "cancel", "drop"], [0.7, 0.15, 0.15])[0]
        reply = Reply(action, rng.randint(0, 4))
        try:
            async with asyncio.timeout(settings.call_timeout):
                await self.door.speak(request, reply)
        except TimeoutError:
            await self.door.reset()
            reply.dropped = True
            stats.error("CLIENT_TIMEOUT", False, f"{rid}: no Final in {settings.call_timeout} s")
        self.settle(ex, reply, settings, stats)

    def settle(self, ex: Exchange, reply: Reply, settings: Settings, stats: Stats) -> None:
        rid, action = ex.request_id, reply.action
        stats.tokens += reply.tokens
        if reply.ttft is not None:
            stats.ttft.append(reply.ttft)
        if reply.cancel_refused is not None:  # NOT_FOUND: the reply had just ended
            code = reply.cancel_refused
            stats.error(f"Cancel:{code}", code == "NOT_FOUND", f"{rid}: Cancel got {code}")
        final, error = reply.final, reply.error
        if final is not None:
            reason, stored = final["finish_reason"], final["stored"]
            if reason in DONE_REASONS and stored:
                ex.state, ex.reply = COMPLETED, final["text"]
                self.completed_in.add(ex.session_id)
            elif reason == "FINISH_REASON_CANCELLED" and not stored and action == "cancel":
                ex.state = CANCELLED
            else:
                stats.error("BAD_FINAL", False, f"{rid}: {action}, Final {reason} stored={stored}")
            stats.outcomes[ex.state] += 1
            if error is not None:  # the bridge's cancel landed between Final and done
                expected = error[0] == "CANCELLED" and action == "cancel"
                stats.error(f"{error[0]} after Final", expected, f"{rid}: {error}")
        elif reply.dropped:
            self.dropped.add(rid)
            stats.outcomes["disconnected"] += 1
        elif error is None:
            stats.error("NO_FINAL", False, f"{rid}: the stream ended without a Final")
        else:
            code, message = error
            busy = BUSY_WITH.search(message)
            if code == "CANCELLED" and action == "cancel":
                ex.state, expected = CANCELLED, True
            elif code == "FAILED_PRECONDITION" and busy:
                ex.state = REFUSED  # shared session, or one of ours still ending
                expected = ex.session_id == self.shared or busy.group(1) in self.dropped
            else:
                ex.state = UNKNOWN if code == "BRIDGE_CLOSED" else FAILED
                expected = code == "RESOURCE_EXHAUSTED" and settings.exhaustion_expected
            stats.outcomes[ex.state if expected else "error"] += 1
            stats.error(code, expected, f"{rid} ({self.door.kind}, {action}): {code}: {message}")


@dataclass
class Verdict:
    sessions: int = 0
    turns: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    problems: list[str] = field(default_factory=list)

    def bad(self, kind: str, detail: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.problems.append(f"{kind}: {detail}")


def verify(stored: dict[str, list[dict[str, Any]]], ledger: dict[str, Exchange]) -> Verdict:
    """Every session's stored turns against the ledger (see the module docstring)."""
    verdict = Verdict(sessions=len(stored))
    for session, turns in stored.items():
        verdict.turns += len(turns)
        if [t["seq"] for t in turns] != list(range(1, len(turns) + 1)):
            verdict.bad("unexpected", f"{session}: seqs {[t['seq'] for t in turns]}")
        groups: list[list[dict[str, Any]]] = []
        for turn in turns:
            if groups and groups[-1][0]["request_id"] == turn["request_id"]:
                groups[-1].append(turn)
            else:
                groups.append([turn])
        seen: set[str] = set()
        last_order: dict[int, int] = {}
        for group in groups:
            rid = group[0]["request_id"]
            ex = ledger.get(rid)
            if rid in seen:
                verdict.bad("duplicated", f"{session}: {rid} stored twice")
                continue
            seen.add(rid)
            if ex is None or ex.session_id != session or ex.state not in (COMPLETED, UNKNOWN):
                state = "no such request" if ex is None else f"{ex.state} in {ex.session_id}"
                verdict.bad("unexpected", f"{session}: {rid} stored ({state})")
                continue
            shape = [(t["speaker_kind"], t["npc_id"]) for t in group]
            player = ("SPEAKER_KIND_PLAYER", "")
            if group[0]["text"] != ex.text or shape not in (
                [player],
                [player, ("SPEAKER_KIND_NPC", ex.npc_id)],
            ):
                verdict.bad("unexpected", f"{session}: {rid} stored as {shape}: {group}")
            elif ex.state == COMPLETED and [t["text"] for t in group[1:]] != (
                [ex.reply] if ex.reply else []
            ):
                verdict.bad("unexpected", f"{session}: {rid} reply {group[1:]} != {ex.reply!r}")
            if ex.order <= last_order.get(ex.client, 0):
                verdict.bad("unexpected", f"{session}: {rid} stored out of order")
            last_order[ex.client] = ex.order
        for ex in ledger.values():
            if ex.session_id == session and ex.state == COMPLETED and ex.request_id not in seen:
                verdict.bad("lost", f"{session}: {ex.request_id} (Final said stored)")
    return verdict
