"""A cancellation that arrives while a reply is being committed comes too late: the
reply is stored, so the client must hear the stored Final, never CANCELLED (which says
nothing was stored). Found by benchmarks/soak.py: bridge cancel frames landing during
the commit left stored turns behind a CANCELLED error."""

from __future__ import annotations

import asyncio
import threading

from bridge_harness import Conn
from server_harness import ServerThread, server_config
from server_harness_streams import wait_until

SHORT = {"max_tokens": 4, "seed": 1}


def test_a_bridge_cancel_during_the_commit_gets_the_stored_final(
    tmp_path, trained_cast_dir, tiny_base
):
    server = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base)).start()
    entered, release = threading.Event(), threading.Event()
    try:
        store = server.daemon.service.store
        append = store.append

        def slow_append(*args):
            entered.set()
            release.wait(60)
            return append(*args)

        store.append = slow_append
        with Conn(server.bridge_url) as conn:
            request = {"npc_id": "brann", "session_id": "late", "text": "Hello there"}
            conn.send(
                {
                    "id": "s",
                    "method": "Speak",
                    "request": request | {"sampling": {"max_tokens": 4, "seed": 1}},
                }
            )
            assert entered.wait(60)
            conn.send({"id": "s", "cancel": True})
            connections = server.daemon._bridge.connections
            # Cancelled: the call is waiting for the commit, or (the bug) it has ended.
            (bridged,) = connections
            assert wait_until(lambda: "s" in bridged.cancelled or "s" not in bridged.calls)
            release.set()
            frames = conn.until_done({"s"})
        assert frames[-1] == {"id": "s", "done": True}, frames[-1]
        final = frames[-2]["event"]["final"]
        assert final["stored"] is True
        with server.client() as client:
            turns = client.get_session("late").turns
        assert [t.text for t in turns] == ["Hello there", final["text"]][: len(turns)]
        assert len(turns) == (2 if final["text"] else 1)
    finally:
        release.set()
        server.stop()


def test_a_bridge_cancel_after_the_final_ends_with_a_plain_done(
    tmp_path, trained_cast_dir, tiny_base
):
    """The Final is written, the call waits for the socket to drain, the cancel lands:
    the client has the stored Final, so the call ends with done, not CANCELLED."""
    server = ServerThread(server_config(trained_cast_dir, tmp_path, tiny_base)).start()
    try:
        with Conn(server.bridge_url) as conn:
            (bridged,) = _connection(server, conn)
            send, draining = bridged.send, asyncio.Event()

            async def send_then_drain(frame, binary):
                await send(frame, binary)
                if "final" in frame.get("event", {}):
                    await draining.wait()  # a full write buffer, as far as the call knows

            bridged.send = send_then_drain
            request = {"npc_id": "brann", "session_id": "drain", "text": "Hello there"}
            conn.send({"id": "s", "method": "Speak", "request": request | {"sampling": SHORT}})
            frames = []
            while "final" not in (frame := conn.recv()).get("event", {}):
                frames.append(frame)
            conn.send({"id": "s", "cancel": True})
            assert wait_until(lambda: "s" in bridged.cancelled or "s" not in bridged.calls)
            server.loop.call_soon_threadsafe(draining.set)
            assert frame["event"]["final"]["stored"] is True
            assert conn.recv() == {"id": "s", "done": True}
    finally:
        server.stop()


def _connection(server: ServerThread, conn: Conn) -> list:
    """The server side of the test's one bridge connection."""
    conn.call("ListNpcs", {})  # the handshake is done and the connection registered
    return list(server.daemon._bridge.connections)
