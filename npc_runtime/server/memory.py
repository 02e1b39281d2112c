"""What an NPC remembers beyond its prompt window, and what it knows of its world.

A reply's prompt holds the latest turns of its session (the window: --max-history-turns,
moving HISTORY_CHUNK turns at a time). Older turns do not vanish:
- a recap: once turns leave the window, the model folds them into a running recap of the
  session, in the background (its own engine request; a reply never waits for it), kept
  in the session store (GetSession shows it; ResetSession removes it; it survives a
  crash like turns). When the model writes nothing, the recap keeps the lines instead;
- recall: the older lines nearest the player's latest line (the role encoder's cosine),
  word for word, since a small model's recap loses details;
- lore: the passages of the lore folder (the world's and this NPC's) nearest the line.
They reach the model as notes before the latest lines (see neeko/prompt.py), after the
history, so the prefix cache still serves the session's earlier prompt.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import numpy as np

from ..engine.api import EngineError, GenerationRequest, SamplingParams, Voice
from ..neeko.lore import LoreBook
from ..neeko.profile import NpcProfile
from ..neeko.prompt import HISTORY_CHUNK, Turn
from ..sessions import SessionStore, StoredTurn

log = logging.getLogger("npc_runtime.server")

RECALL = 2  # older lines per reply
LORE = 2  # lore passages per reply
THRESHOLD = 0.3  # the least cosine similarity to the scene that is worth the tokens
RECAP_CHARS = 1200
FOLD = 32  # turns folded into the recap per model call
RECALL_SCOPE = 1000  # older turns searched
CACHE = 20_000  # embeddings of older lines kept (about 30 MB)
SCRIBE = NpcProfile(
    id="recap",
    name="Scribe",
    profile="You keep the record of a conversation in a game.",
    style="Plain and short: who said what, what was decided, every fact and name told.",
)
RECAP_SAMPLING = SamplingParams(max_tokens=160, temperature=0.0, repetition_penalty=1.1)


def window_start(last_seq: int, limit: int) -> int:
    """The first seq of the window of a session whose last turn is last_seq: the latest
    `limit` turns, from a seq just after a multiple of HISTORY_CHUNK, so consecutive
    replies' prompts begin alike (seqs count from 1 in each session)."""
    first = last_seq - limit + 1
    return max(1, -(-(first - 1) // HISTORY_CHUNK) * HISTORY_CHUNK + 1)


def _line(turn: StoredTurn) -> str:
    return f"{turn.speaker_name}: {' '.join(turn.text.split())}"


class SessionMemory:
    def __init__(self, store: SessionStore, engine, lore: LoreBook, cast, window: int):
        self.store = store
        self.engine = engine
        self.lore = lore
        self.cast = cast  # its role encoder embeds lines (loaded when first needed)
        self.window = window
        self._vectors: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._folding: dict[str, asyncio.Task] = {}

    # -- what a reply's prompt gets -------------------------------------------------------
    async def notes(self, session_id: str, npc_id: str, line: str) -> str:
        """The notes for an NPC's reply to `line` in a session: recap, recalled lines,
        lore ('' when there is nothing)."""
        return await asyncio.to_thread(self._notes, session_id, npc_id, line)

    def _notes(self, session_id: str, npc_id: str, line: str) -> str:
        recap = self.store.recap(session_id)
        older = self._older(session_id)
        if not (recap or older or self.lore.passages):
            return ""
        query = self.cast.encoder.encode([line])[0]
        recalled = self._recall(session_id, older, query)
        lore = self.lore.nearest(npc_id, query, LORE, THRESHOLD)
        parts = []
        if recap:
            parts.append(f"Earlier in this scene: {recap.text}")
        if recalled:
            parts.append("Said earlier: " + " / ".join(_line(t) for t in recalled))
        if lore:
            parts.append("What you know: " + " ".join(p.text for p in lore))
        if not parts:
            return ""
        return "(Notes for you alone, not said aloud.)\n" + "\n".join(parts)

    def _older(self, session_id: str) -> list[StoredTurn]:
        """The turns before the window (the latest RECALL_SCOPE of them)."""
        turns = self.store.recent_turns(session_id, self.window + HISTORY_CHUNK + RECALL_SCOPE)
        if not turns:
            return []
        start = window_start(turns[-1].seq, self.window)
        return [t for t in turns if t.seq < start]

    def _recall(self, session_id: str, older: list[StoredTurn], query) -> list[StoredTurn]:
        if not older:
            return []
        missing = [t for t in older if (session_id, t.seq) not in self._vectors]
        if missing:
            for turn, vector in zip(missing, self.cast.encoder.encode([t.text for t in missing])):
                self._vectors[(session_id, turn.seq)] = vector
            while len(self._vectors) > CACHE:
                self._vectors.popitem(last=False)
        vectors = np.stack([self._vectors[(session_id, t.seq)] for t in older])
        scores = vectors @ query
        best = np.argsort(-scores, kind="stable")[:RECALL]
        return sorted((older[i] for i in best if scores[i] >= THRESHOLD), key=lambda t: t.seq)

    # -- the recap ------------------------------------------------------------------------
    def after_commit(self, session_id: str) -> None:
        """Turns were stored: fold those that left the window into the recap, in the
        background (one task per session at a time)."""
        task = self._folding.get(session_id)
        if task is None or task.done():
            self._folding[session_id] = asyncio.ensure_future(self._fold(session_id))

    def forget(self, session_id: str) -> None:
        """The session was reset: stop folding it and drop what was cached of it."""
        task = self._folding.pop(session_id, None)
        if task is not None:
            task.cancel()
        for key in [k for k in self._vectors if k[0] == session_id]:
            del self._vectors[key]

    async def close(self) -> None:
        tasks = list(self._folding.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._folding.clear()

    async def _fold(self, session_id: str) -> None:
        try:
            while await self._fold_once(session_id):
                pass
        except asyncio.CancelledError:
            raise
        except Exception:  # the recap waits for the next turn; replies go on regardless
            log.exception("session %s: the recap could not be written", session_id)

    async def _fold_once(self, session_id: str) -> bool:
        """Fold up to FOLD turns that left the window into the recap; False when none left."""
        recap = await asyncio.to_thread(self.store.recap, session_id)
        done = recap.through_seq if recap else 0
        older = await asyncio.to_thread(self._older, session_id)
        todo = [t for t in older if t.seq > done][:FOLD]
        if not todo:
            return False
        lines = "\n".join(_line(t) for t in todo)
        ask = (
            f"The record so far: {recap.text if recap else '(nothing yet)'}\n\n"
            f"What was said next:\n{lines}\n\nWrite the new record, in at most five sentences."
        )
        request = GenerationRequest(
            f"recap-{session_id}-{todo[-1].seq}",
            SCRIBE.id,
            (Turn("Game", ask),),
            RECAP_SAMPLING,
            voice=Voice(SCRIBE, {}),
        )
        try:
            stream = await asyncio.to_thread(self.engine.submit, request)
        except EngineError as exc:  # a full engine: the next stored turn tries again
            log.info("session %s: recap postponed (%s)", session_id, exc)
            return False
        final = None
        async for item in stream:
            final = item
        if final is None or final.finish_reason not in ("stop", "length"):
            return False
        text = " ".join(final.text.split())[:RECAP_CHARS]
        if not text:  # the model wrote nothing: keep the lines themselves, the latest last
            earlier = f"{recap.text} " if recap else ""
            text = (earlier + " / ".join(_line(t) for t in todo))[-RECAP_CHARS:]
        return await asyncio.to_thread(self.store.set_recap, session_id, text, todo[-1].seq)
