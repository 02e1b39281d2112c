"""A session of any length can be read back, page by page, through both doors, and
every page fits the clients' default message sizes (gRPC 4 MiB, websockets 1 MiB)."""

from __future__ import annotations

import grpc
import pytest
from bridge_harness import Conn
from server_harness import ServerThread, server_config, store_exchanges

from npc_runtime.v1 import npc_runtime_pb2 as pb
from npc_runtime.v1.npc_runtime_pb2_grpc import NpcRuntimeStub

LONG_LINE = "ä" * 2000  # 4000 bytes of UTF-8, about the longest player line


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_cast_dir, tiny_base):
    tmp = tmp_path_factory.mktemp("pages")
    config = server_config(trained_cast_dir, tmp, tiny_base)
    store_exchanges(config, "short", 225, lambda i: f"line {i}", str)
    store_exchanges(config, "huge", 600, lambda i: LONG_LINE, lambda i: LONG_LINE)
    running = ServerThread(config).start()
    yield running
    running.stop()


def test_pages_hold_every_turn_once_in_order(server):
    with server.client() as client:
        first = client.get_session("short")
        assert len(first.turns) == 200 and first.turn_count == 450 and first.next_page_token
        seqs = [t.seq for t in client.session_turns("short")]
        assert seqs == list(range(1, 451))
        small = client.get_session("short", page_size=7, page_token=first.next_page_token)
        assert [t.seq for t in small.turns] == list(range(201, 208))
        latest = list(client.session_turns("short", max_turns=30))
        assert [t.seq for t in latest] == list(range(421, 451))
        last = client.get_session("short", page_token="449")
        assert [t.seq for t in last.turns] == [450] and last.next_page_token == ""


def test_a_huge_session_reads_back_within_default_message_sizes(server):
    """1200 turns of 4000 bytes (4.8 MB of text): over gRPC's default 4 MiB receive limit
    and the bridge's frame limit in one reply, so only pages can carry them."""
    with grpc.insecure_channel(server.address) as channel:  # gRPC's defaults: 4 MiB
        stub = NpcRuntimeStub(channel)
        seqs, token = [], ""
        while True:
            page = stub.GetSession(pb.GetSessionRequest(session_id="huge", page_token=token))
            seqs += [t.seq for t in page.turns]
            token = page.next_page_token
            if not token:
                break
        assert seqs == list(range(1, 1201))
    with server.client() as client:
        turns = list(client.session_turns("huge"))
        assert len(turns) == 1200 and all(t.text == LONG_LINE for t in turns)
        page = client.get_session("huge", page_size=1000)
        assert len(page.SerializeToString()) <= 300 * 1024 and page.next_page_token
    with Conn(server.bridge_url) as conn:
        (reply,) = conn.call("GetSession", {"session_id": "huge", "page_size": 1000})
        assert reply["response"]["turn_count"] == 1200
        assert reply["response"]["next_page_token"]


@pytest.mark.parametrize(
    "request_, fragment",
    [
        ({"page_size": 1001}, "page_size must be at most 1000"),
        ({"page_token": "abc"}, "page_token is not one this server gave out"),
        ({"page_token": "9" * 40}, "page_token is not one this server gave out"),
    ],
)
def test_bad_pages_are_refused(server, request_, fragment):
    with Conn(server.bridge_url) as conn:
        (reply,) = conn.call("GetSession", {"session_id": "short", **request_})
        assert (
            reply["error"]["code"] == "INVALID_ARGUMENT" and fragment in reply["error"]["message"]
        )
