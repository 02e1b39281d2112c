"""What a bridge client can make the daemon hold is bounded: connections, a stranger's
frames, and a client that stops reading loses its connection, calls and slots."""

from __future__ import annotations

import json
import socket
import time

import pytest
from bridge_harness import Conn
from server_harness import TOKEN, ServerThread, server_config, store_exchanges
from server_harness_streams import wait_until
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from npc_runtime.server.auth import AuthPolicy

LINE = "ä" * 2000


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_cast_dir, tiny_base):
    tmp = tmp_path_factory.mktemp("bounds")
    config = server_config(
        trained_cast_dir,
        tmp,
        tiny_base,
        bridge_max_connections=3,
        stream_idle_seconds=2.0,
        auth=AuthPolicy(token=TOKEN),
    )
    store_exchanges(config, "big", 200, lambda i: LINE, lambda i: LINE)
    running = ServerThread(config).start()
    yield running
    running.stop()


HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def test_connections_beyond_the_limit_are_refused(server):
    with Conn(server.bridge_url, additional_headers=HEADERS) as a:
        with Conn(server.bridge_url) as b, Conn(server.bridge_url) as c:
            assert wait_until(lambda: len(server.daemon._bridge.connections) == 3, 10)
            with pytest.raises(InvalidStatus) as refused:
                connect(server.bridge_url, open_timeout=10)
            assert refused.value.response.status_code == 503
            assert b"--bridge-max-connections" in refused.value.response.body
            del b, c
        assert wait_until(lambda: len(server.daemon._bridge.connections) == 1, 10)
        (reply,) = a.call("ListNpcs", {})
        assert "response" in reply
        with Conn(server.bridge_url, additional_headers=HEADERS) as again:
            (reply,) = again.call("ListNpcs", {})
            assert "response" in reply


def test_a_stranger_cannot_send_large_frames(server):
    """Before a good token, a frame (and an unfinished fragmented one) is held only up to
    64 KiB; with the token the usual limit holds."""
    with Conn(server.bridge_url) as stranger:
        stranger.ws.send(json.dumps({"id": "x", "method": "ListNpcs", "pad": "p" * 100_000}))
        with pytest.raises(ConnectionClosed):
            stranger.recv()
    with Conn(server.bridge_url) as friend:
        (reply,) = friend.call("ListNpcs", {}, authorization=f"Bearer {TOKEN}")
        assert "response" in reply
        reply = friend.error(json.dumps({"id": "y", "method": "ListNpcs", "pad": "p" * 100_000}))
        assert reply["error"]["code"] == "INVALID_ARGUMENT"  # read, then refused: a bad key


def test_a_client_that_stops_reading_loses_its_connection_and_calls(server):
    sock = socket.create_connection(("127.0.0.1", server.daemon.bridge_port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws = connect(server.bridge_url, sock=sock, additional_headers=HEADERS, open_timeout=10)
    ws = ws.__enter__()
    speak = {
        "npc_id": "pip",
        "session_id": "stuck",
        "text": "Talk!",
        "sampling": {"max_tokens": 900},
    }
    ws.send(json.dumps({"id": "s", "method": "Speak", "request": speak}))
    for i in range(40):  # about 10 MB of replies that are never read
        request = {"session_id": "big", "page_size": 1000}
        ws.send(json.dumps({"id": f"g{i}", "method": "GetSession", "request": request}))
    service = server.daemon.service
    started = time.monotonic()
    assert wait_until(lambda: not server.daemon._bridge.connections, 30)
    assert wait_until(lambda: not service._flights and not service._busy_sessions, 10)
    assert time.monotonic() - started < 20
    with Conn(server.bridge_url, additional_headers=HEADERS) as conn:
        (reply,) = conn.call("GetSession", {"session_id": "stuck"})
        assert reply["error"]["code"] == "NOT_FOUND"  # the abandoned reply stored nothing
    ws.close()
