"""Sessions on disk: one SQLite database (WAL) holding every conversation's turns.

A turn pair (the player's line and the NPC's reply) is written in one transaction when
the reply completes, with synchronous=FULL: SQLite's journal makes that transaction
atomic, so a kill -9 (or a power cut) at any moment leaves either both turns or neither,
and never a damaged file. A reply in flight lives only in memory until then.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA_VERSION = 3  # 2: turns.actions; 3: recaps
PLAYER = "player"
NPC = "npc"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    speaker_kind TEXT NOT NULL CHECK (speaker_kind IN ('player', 'npc')),
    npc_id TEXT NOT NULL,
    speaker_name TEXT NOT NULL,
    text TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    actions TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS recaps (
    session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    through_seq INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
"""
_UPGRADES = {
    1: "ALTER TABLE turns ADD COLUMN actions TEXT NOT NULL DEFAULT ''",
    2: _SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS recaps") :].rstrip().rstrip(";"),
}
_TURN_COLUMNS = "speaker_kind, npc_id, speaker_name, text, seq, request_id, created_at, actions"


class StoreError(RuntimeError):
    """The session database cannot be opened or used; the message names the file.

    `reason` says what a caller can tell its users: "full" (free disk space),
    "read-only" (the folder or file is not writable), "busy" (another process holds the
    database), "io" (the disk failed), "damaged" or "version".
    """

    def __init__(self, message: str, reason: str = "damaged"):
        super().__init__(message)
        self.reason = reason


def _reason(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_FULL":
        return "full"
    if name.startswith("SQLITE_READONLY") or name.startswith("SQLITE_CANTOPEN"):
        return "read-only"
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
        return "busy"
    if name.startswith("SQLITE_IOERR"):
        return "io"
    return "damaged"


_HINTS = {
    "full": "the disk is full: free some space",
    "read-only": "the folder is not writable: fix its permissions or choose another "
    "data directory (--data-dir or $NPC_RUNTIME_DATA)",
    "busy": "another process holds the database: is a second daemon using this data directory?",
    "io": "the disk reported an I/O error",
}


def _private_files(path: Path) -> None:
    """The database readable by its owner only (0600), created so before SQLite opens it;
    SQLite gives its -wal and -shm files the database's mode."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            os.chmod(file, 0o600)


@contextlib.contextmanager
def _sqlite_errors(path: Path, doing: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        reason = _reason(exc)
        hint = f"; {_HINTS[reason]}" if reason in _HINTS else ""
        raise StoreError(f"{path}: cannot {doing} ({exc}){hint}", reason) from None


@dataclass(frozen=True)
class NewTurn:
    speaker_kind: str  # PLAYER or NPC
    npc_id: str  # "" for the player
    speaker_name: str
    text: str
    # The actions an NPC took with this turn: a JSON list of {"name", "arguments"}, or "".
    actions: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class StoredTurn(NewTurn):
    seq: int
    request_id: str
    created_at: float


def _stored(values) -> StoredTurn:
    *columns, actions = values
    return StoredTurn(*columns, actions=actions)


@dataclass(frozen=True)
class Recap:
    """What the model wrote of a session's turns up to through_seq, once they had left
    the prompt (see server/memory.py)."""

    text: str
    through_seq: int
    updated_at: float


@dataclass(frozen=True)
class SessionRecord:
    id: str
    created_at: float
    updated_at: float
    turns: list[StoredTurn]
    turn_count: int = 0
    more: bool = False  # turns after these exist (a page ended before the session did)


@dataclass(frozen=True)
class SessionSummary:
    id: str
    turn_count: int
    npc_ids: list[str]
    created_at: float
    updated_at: float


def _columns(turn: NewTurn) -> tuple[str, str, str, str, str]:
    return turn.speaker_kind, turn.npc_id, turn.speaker_name, turn.text, turn.actions


class SessionStore:
    """Thread-safe: the service calls it from worker threads, one statement at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _private_files(self.path)
        except OSError as exc:
            raise StoreError(
                f"{self.path.parent}: cannot create the data directory ({exc.strerror}); "
                f"{_HINTS['read-only']}",
                "read-only",
            ) from None
        self._lock = threading.Lock()
        with _sqlite_errors(self.path, "open the session database"):
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 5000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: cannot switch the database to WAL mode")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, *_UPGRADES, SCHEMA_VERSION):
                raise StoreError(
                    f"{self.path}: session schema version {version} is not supported "
                    f"(this npc-runtime reads version {SCHEMA_VERSION})",
                    "version",
                )
            if version == 0:
                self._db.executescript(_SCHEMA)
            else:  # older sessions: the upgrades and the new version in one transaction
                steps = [_UPGRADES[v] for v in range(version, SCHEMA_VERSION)]
                self._db.executescript(
                    "BEGIN IMMEDIATE;"
                    + "".join(f"{step};" for step in steps)
                    + f"PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
                )
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            self._sessions = self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
        if check != "ok":
            raise StoreError(f"{self.path}: the session database is damaged ({check})")

    @contextlib.contextmanager
    def _use(self, doing: str) -> Iterator[sqlite3.Connection]:
        """The connection, one caller at a time, with SQLite's errors as StoreError."""
        with self._lock, _sqlite_errors(self.path, doing):
            yield self._db

    @contextlib.contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._use(doing) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (disk full)
                    db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def session_count(self) -> int:
        return self._sessions

    def exists(self, session_id: str) -> bool:
        with self._use("read a session") as db:
            return (
                db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
                is not None
            )

    def append(self, session_id: str, request_id: str, turns: list[NewTurn]) -> list[int]:
        """Store turns at the end of a session (created if new), all or none; their seqs."""
        now = time.time()
        with self._transaction("store the turns") as db:
            created = db.execute(
                "INSERT INTO sessions (id, created_at, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO NOTHING",
                (session_id, now, now),
            ).rowcount
            if not created:
                db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now, session_id))
            last = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM turns WHERE session_id = ?", (session_id,)
            ).fetchone()[0]
            seqs = list(range(last + 1, last + 1 + len(turns)))
            db.executemany(
                "INSERT INTO turns (session_id, seq, speaker_kind, npc_id, speaker_name, "
                "text, actions, request_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(session_id, s, *_columns(t), request_id, now) for s, t in zip(seqs, turns)],
            )
        self._sessions += created
        return seqs

    def _turns(self, session_id: str, limit: int) -> list[StoredTurn]:
        rows = self._db.execute(
            f"SELECT {_TURN_COLUMNS} FROM turns WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
            (session_id, limit if limit > 0 else -1),
        ).fetchall()
        return [_stored(row) for row in reversed(rows)]

    def recent_turns(self, session_id: str, limit: int) -> list[StoredTurn]:
        """The latest `limit` turns (all when limit is 0), oldest first; [] if no session."""
        with self._use("read a session"):
            return self._turns(session_id, limit)

    def get(
        self,
        session_id: str,
        max_turns: int = 0,
        after: int = 0,
        page_size: int = 0,
        max_bytes: int = 0,
    ) -> SessionRecord | None:
        """A session and its turns with seq > after, oldest first: of the latest
        max_turns only (0: all), at most page_size of them and about max_bytes of text
        (0: no limit; a page holds at least one turn)."""
        with self._use("read a session") as db:
            row = db.execute(
                "SELECT created_at, updated_at FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                return None
            count, last = db.execute(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM turns WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            if max_turns:
                after = max(after, last - max_turns)
            rows = db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE session_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (session_id, after, page_size + 1 if page_size else -1),
            )
            turns, size, more = [], 0, False
            for values in rows:
                turn = _stored(values)
                size += len(turn.text.encode()) + len(turn.speaker_name.encode())
                if (page_size and len(turns) == page_size) or (
                    max_bytes and turns and size > max_bytes
                ):
                    more = True
                    break
                turns.append(turn)
            return SessionRecord(session_id, row[0], row[1], turns, count, more)

    def list(self, page_size: int, after: str = "") -> list[SessionSummary]:
        """Sessions in id order, starting after the id `after`."""
        with self._use("list sessions") as db:
            rows = db.execute(
                "SELECT s.id, s.created_at, s.updated_at, COUNT(t.seq) FROM sessions s "
                "LEFT JOIN turns t ON t.session_id = s.id WHERE s.id > ? "
                "GROUP BY s.id ORDER BY s.id LIMIT ?",
                (after, page_size),
            ).fetchall()
            out = []
            for sid, created, updated, count in rows:
                npcs = db.execute(
                    "SELECT npc_id FROM turns WHERE session_id = ? AND speaker_kind = 'npc' "
                    "GROUP BY npc_id ORDER BY MIN(seq)",
                    (sid,),
                ).fetchall()
                out.append(SessionSummary(sid, count, [n for (n,) in npcs], created, updated))
            return out

    def recap(self, session_id: str) -> Recap | None:
        with self._use("read a session") as db:
            row = db.execute(
                "SELECT text, through_seq, updated_at FROM recaps WHERE session_id = ?",
                (session_id,),
            ).fetchone()
        return Recap(*row) if row else None

    def set_recap(self, session_id: str, text: str, through_seq: int) -> bool:
        """Store a newer recap of a session (True), unless the session is gone or holds a
        recap through a later turn already (False): recaps only move forward."""
        with self._transaction("store the recap") as db:
            if not db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
                return False
            return bool(
                db.execute(
                    "INSERT INTO recaps (session_id, text, through_seq, updated_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(session_id) DO UPDATE SET "
                    "text = excluded.text, through_seq = excluded.through_seq, "
                    "updated_at = excluded.updated_at WHERE excluded.through_seq > through_seq",
                    (session_id, text, through_seq, time.time()),
                ).rowcount
            )

    def delete(self, session_id: str) -> int | None:
        """Forget a session; the number of turns removed, or None if there was none."""
        with self._transaction("delete a session") as db:
            count = db.execute(
                "SELECT COUNT(*) FROM turns WHERE session_id = ?", (session_id,)
            ).fetchone()[0]
            gone = db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount
        self._sessions -= gone
        return count if gone else None
