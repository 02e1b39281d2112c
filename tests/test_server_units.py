"""The daemon's parts that need no model: session store, sentences, auth, generated code."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st

from npc_runtime.server.auth import AuthPolicy, is_loopback
from npc_runtime.server.errors import ServiceError, from_store
from npc_runtime.server.sentences import SentenceSplitter
from npc_runtime.sessions import NPC, PLAYER, NewTurn, SessionStore, StoreError

ROOT = Path(__file__).resolve().parent.parent


def _exchange(n: int) -> list[NewTurn]:
    return [NewTurn(PLAYER, "", "Player", f"line {n}"), NewTurn(NPC, "brann", "Brann", f"re {n}")]


def test_sessions_append_read_list_delete(tmp_path):
    store = SessionStore(tmp_path / "s.sqlite3")
    assert store.get("s1") is None and store.recent_turns("s1", 10) == []
    assert store.append("s1", "r1", _exchange(1)) == [1, 2]
    assert store.append(
        "s1", "r2", [NewTurn(PLAYER, "", "Ann", "hi"), NewTurn(NPC, "pip", "Pip", "yo")]
    ) == [3, 4]  # noqa: E501
    store.append("s0", "r3", _exchange(1))
    record = store.get("s1")
    assert [(t.seq, t.speaker_kind, t.npc_id, t.text) for t in record.turns] == [
        (1, "player", "", "line 1"), (2, "npc", "brann", "re 1"),
        (3, "player", "", "hi"), (4, "npc", "pip", "yo"),
    ]  # fmt: skip
    assert [t.seq for t in store.recent_turns("s1", 3)] == [2, 3, 4]
    assert [t.seq for t in store.get("s1", max_turns=1).turns] == [4]
    first = store.list(1)
    assert [s.id for s in first] == ["s0"]
    (second,) = store.list(10, after="s0")
    assert (second.id, second.turn_count, second.npc_ids) == ("s1", 4, ["brann", "pip"])
    assert store.delete("s1") == 4 and store.delete("s1") is None
    assert store.get("s1") is None and [s.id for s in store.list(10)] == ["s0"]
    store.close()


def test_a_failed_append_stores_nothing(tmp_path):
    store = SessionStore(tmp_path / "s.sqlite3")
    store.append("s1", "r1", _exchange(1))
    bad = [NewTurn(PLAYER, "", "Player", "fine"), NewTurn("narrator", "", "N", "breaks CHECK")]
    with pytest.raises(Exception, match="CHECK"):
        store.append("s1", "r2", bad)
    with pytest.raises(Exception, match="CHECK"):
        store.append("new", "r3", bad)
    assert len(store.get("s1").turns) == 2 and store.get("new") is None
    store.close()


def test_a_database_held_by_another_writer_is_unavailable_and_stores_nothing(tmp_path):
    """A second process writing the same data directory: after the busy timeout the
    append fails as 'busy', which the service answers UNAVAILABLE with what to check."""
    store = SessionStore(tmp_path / "s.sqlite3")
    store.append("s1", "r1", _exchange(1))
    other = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock
    with pytest.raises(StoreError) as busy:
        store.append("s2", "r2", _exchange(2))
    other.execute("ROLLBACK")
    other.close()
    assert busy.value.reason == "busy" and "another process holds the database" in str(busy.value)
    refused = from_store(busy.value, "the reply was not stored")
    assert refused.code == "UNAVAILABLE" and "s.sqlite3" in refused.message
    assert store.get("s2") is None and store.session_count == 1
    store.append("s2", "r2", _exchange(2))  # the lock is gone: storing works again
    assert store.session_count == 2
    store.close()


def test_store_reopens_in_wal_mode_and_refuses_garbage(tmp_path):
    path = tmp_path / "s.sqlite3"
    SessionStore(path).append("s1", "r1", _exchange(1))
    reopened = SessionStore(path)
    assert reopened._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(reopened.get("s1").turns) == 2
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="junk.sqlite3"):
        SessionStore(junk)


V1_SCHEMA = """
CREATE TABLE sessions (id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE turns (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    speaker_kind TEXT NOT NULL CHECK (speaker_kind IN ('player', 'npc')),
    npc_id TEXT NOT NULL, speaker_name TEXT NOT NULL, text TEXT NOT NULL,
    request_id TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (session_id, seq));
INSERT INTO sessions VALUES ('old', 1.0, 1.0);
INSERT INTO turns VALUES ('old', 1, 'player', '', 'Player', 'hello', 'r1', 1.0);
PRAGMA user_version = 1;
"""


def test_sessions_of_the_first_schema_are_upgraded_and_kept(tmp_path):
    """A database written before turns had actions opens with its turns intact."""
    path = tmp_path / "s.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.close()
    store = SessionStore(path)
    (turn,) = store.get("old").turns
    assert (turn.text, turn.actions, turn.seq) == ("hello", "", 1)
    acted = NewTurn(NPC, "pip", "Pip", "here", actions='[{"name": "wave", "arguments": {}}]')
    store.append("old", "r2", [acted])
    store.close()
    reopened = SessionStore(path)
    assert [t.actions for t in reopened.get("old").turns] == ["", acted.actions]
    assert reopened._db.execute("PRAGMA user_version").fetchone()[0] == 3
    assert reopened.recap("old") is None and reopened.set_recap("old", "a recap", 2)
    reopened.close()
    newer = tmp_path / "newer.sqlite3"
    sqlite3.connect(newer).execute("PRAGMA user_version = 4").connection.close()
    with pytest.raises(StoreError, match="version 4"):
        SessionStore(newer)


def test_sentences_stream_out_as_they_complete():
    splitter = SentenceSplitter()
    pieces = ["Hello", " there.", " It costs 3", ".5 coins!", ' "Really?"', " Yes", "...", " ok\n"]
    out = [s for piece in pieces for s in splitter.feed(piece)]
    out += splitter.finish('Hello there. It costs 3.5 coins! "Really?" Yes... ok\nAnd the rest')
    assert out == [
        (0, "Hello there."),
        (1, "It costs 3.5 coins!"),
        (2, '"Really?"'),
        (3, "Yes..."),
        (4, "ok"),
        (5, "And the rest"),
    ]
    empty = SentenceSplitter()
    assert empty.feed("Done.") == [] and empty.finish("Done.") == [(0, "Done.")]


def _sentences_by_rescanning(text: str) -> list[str]:
    """The splitter's rule stated directly: search the whole rest of the text each time."""
    out = []
    while match := re.search(r"(?:[.!?…]+[\"'”’)\]]*\s+|\n+)", text):
        out.append(text[: match.end()].strip())
        text = text[match.end() :]
    return [s for s in out + [text.strip()] if s]


# Text dense in what decides a cut (end marks, closing quotes, spaces, line breaks) with
# any other character between; cut into pieces the way tokens cut it.
_DECIDING = st.sampled_from([*".!?…\"'”’)] \n\tab3", "é", "😀", "\u3000"])
_TEXT = st.text(_DECIDING | st.characters())


@fuzz(300)
@given(text=_TEXT, cuts=st.lists(st.integers(0, 200), max_size=12))
def test_sentences_do_not_depend_on_how_the_text_is_cut_into_tokens(text, cuts):
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    splitter = SentenceSplitter()
    got = [s for a, b in zip(bounds, bounds[1:]) for s in splitter.feed(text[a:b])]
    got += splitter.finish(text)
    assert [i for i, _ in got] == list(range(len(got)))
    assert [s for _, s in got] == _sentences_by_rescanning(text)


def test_auth_rules():
    open_policy = AuthPolicy()
    open_policy.check("Speak", None)
    open_policy.check("RemoveNpc", None)
    for host in ("127.0.0.1", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        open_policy.check_bind(host)
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(ServiceError, match="requires a token"):
            open_policy.check_bind(host)
    AuthPolicy(token="t").check_bind("0.0.0.0")

    both = AuthPolicy(token="user", admin_token="admin")
    both.check("Speak", "Bearer user")
    both.check("Speak", "bearer admin")  # the admin token opens every call
    both.check("ResetSession", "Bearer admin")
    for method, header, code in [
        ("Speak", None, "UNAUTHENTICATED"),
        ("Speak", "Bearer wrong", "UNAUTHENTICATED"),
        ("Speak", "user", "UNAUTHENTICATED"),
        ("RegisterNpc", "Bearer user", "PERMISSION_DENIED"),
        ("RegisterNpc", None, "UNAUTHENTICATED"),
    ]:
        with pytest.raises(ServiceError) as err:
            both.check(method, header)
        assert err.value.code == code, (method, header)
    admin_only = AuthPolicy(admin_token="admin")
    admin_only.check("Speak", None)
    with pytest.raises(ServiceError):
        admin_only.check("ExpandNpc", None)


def test_generated_code_matches_the_proto(tmp_path):
    pytest.importorskip("grpc_tools")
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_protos.sh"), str(tmp_path)],
        check=True,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
    )
    for name in ("npc_runtime_pb2.py", "npc_runtime_pb2.pyi", "npc_runtime_pb2_grpc.py"):
        fresh = (tmp_path / "npc_runtime" / "v1" / name).read_text()
        committed = (ROOT / "npc_runtime" / "v1" / name).read_text()
        assert fresh == committed, f"{name} is stale: run scripts/gen_protos.sh"
