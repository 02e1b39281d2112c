"""The service's calls that read or reset stored sessions: GetSession, ListSessions,
ResetSession. A part of `NpcService` (its base class): pages of the session store, with
tokens checked before they reach SQL, and a reset that waits for no reply in flight."""

from __future__ import annotations

import logging

from ..neeko.profile import ID_PATTERN
from ..sessions import SessionStore
from ..v1 import npc_runtime_pb2 as pb
from . import convert
from .calls import LOCAL, Caller, Observed
from .errors import invalid, not_found, precondition
from .memory import SessionMemory

log = logging.getLogger("npc_runtime.server")
DEFAULT_TURNS_PAGE = 200
MAX_TURNS_PAGE = 1000
# A page, JSON-escaped, stays under the 1 MiB clients take by default.
MAX_PAGE_TEXT_BYTES = 256 * 1024


class SessionCalls(Observed):
    store: SessionStore
    memory: SessionMemory
    _busy_sessions: dict[str, str]

    async def get_session(
        self, request: pb.GetSessionRequest, caller: Caller = LOCAL
    ) -> pb.Session:
        with self.observe("GetSession"):
            session_id = convert.checked_id(request.session_id, "session_id")
            size = request.page_size or DEFAULT_TURNS_PAGE
            if size > MAX_TURNS_PAGE:
                raise invalid(f"page_size must be at most {MAX_TURNS_PAGE}")
            token = request.page_token
            if token and not (token.isascii() and token.isdigit() and len(token) < 19):
                raise invalid("page_token is not one this server gave out")
            after = int(token or 0)
            record = await self._stored(
                "cannot read the session",
                self.store.get,
                session_id,
                request.max_turns,
                after,
                size,
                MAX_PAGE_TEXT_BYTES,
            )
            if record is None:
                raise not_found(f"no session {session_id!r}")
            recap = await self._stored("cannot read the session", self.store.recap, session_id)
            return pb.Session(
                id=record.id,
                turns=[convert.turn_message(t) for t in record.turns],
                created_at=convert.timestamp(record.created_at),
                updated_at=convert.timestamp(record.updated_at),
                next_page_token=str(record.turns[-1].seq) if record.more else "",
                turn_count=record.turn_count,
                summary=recap.text if recap else "",
                summary_through_seq=recap.through_seq if recap else 0,
            )

    async def list_sessions(
        self, request: pb.ListSessionsRequest, caller: Caller = LOCAL
    ) -> pb.ListSessionsResponse:
        with self.observe("ListSessions"):
            size = request.page_size or 100
            if size > 1000:
                raise invalid("page_size must be at most 1000")
            after = request.page_token
            if after and not ID_PATTERN.fullmatch(after):
                raise invalid("page_token is not one this server gave out")
            rows = await self._stored("cannot list sessions", self.store.list, size + 1, after)
            page = rows[:size]
            return pb.ListSessionsResponse(
                sessions=[convert.summary_message(s) for s in page],
                next_page_token=page[-1].id if len(rows) > size else "",
            )

    async def reset_session(
        self, request: pb.ResetSessionRequest, caller: Caller = LOCAL
    ) -> pb.ResetSessionResponse:
        with self.observe("ResetSession"):
            session_id = convert.checked_id(request.session_id, "session_id")
            if session_id in self._busy_sessions:
                raise precondition(
                    f"session {session_id!r} {self._busy_sessions[session_id]}: "
                    "cancel it or wait for its Final event"
                )
            self._busy_sessions[session_id] = "is being reset"
            self.memory.forget(session_id)  # its recap in the making goes too
            try:
                removed = await self._stored(
                    "the session was not reset", self.store.delete, session_id
                )
            finally:
                del self._busy_sessions[session_id]
            if removed is None:
                raise not_found(f"no session {session_id!r}")
            log.info("reset session %s (%d turns)", session_id, removed)
            return pb.ResetSessionResponse(turns_removed=removed)
