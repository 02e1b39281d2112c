"""Conversation state: every session's turns, durable across restarts."""

from .store import (
    NPC,
    PLAYER,
    NewTurn,
    SessionRecord,
    SessionStore,
    SessionSummary,
    StoredTurn,
    StoreError,
)

__all__ = [
    "NPC",
    "PLAYER",
    "NewTurn",
    "SessionRecord",
    "SessionStore",
    "SessionSummary",
    "StoredTurn",
    "StoreError",
]
