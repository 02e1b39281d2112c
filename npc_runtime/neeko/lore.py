"""Lore: what designers write about the world and about single NPCs, as text files, and the
passages nearest a scene, found with the role encoder, for the NPC's prompt.

A lore folder holds the world's files at its top (`*.txt`, `*.md`) and an NPC's in a
folder named by its id (`brann/forge.txt`): every NPC knows the world's lore, only Brann
his own. A file is cut into passages at blank lines (a long paragraph at sentence ends),
each embedded once when the folder is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .profile import ID_PATTERN

SUFFIXES = (".txt", ".md")
MAX_FILE_BYTES = 1 << 20
MAX_PASSAGES = 10_000
PASSAGE_CHARS = 600  # a longer paragraph is cut at sentence ends
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class LoreError(ValueError):
    """A lore folder or file that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Passage:
    npc_id: str  # "" for the world's
    source: str  # the file, relative to the lore folder
    text: str


def passages(text: str) -> list[str]:
    """A file's passages: paragraphs, a long one cut at sentence ends."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        piece = ""
        for sentence in _SENTENCE_END.split(paragraph):
            if piece and len(piece) + 1 + len(sentence) > PASSAGE_CHARS:
                out.append(piece)
                piece = ""
            piece = f"{piece} {sentence}".strip()
        if piece:
            out.append(piece[: PASSAGE_CHARS * 2])
    return out


def read_lore(folder: Path) -> list[Passage]:
    """Every passage of a lore folder; LoreError for an unreadable or oversized file, or
    a subfolder that is not an NPC id."""
    if not folder.is_dir():
        raise LoreError(f"{folder}: no such lore folder")
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_dir() or path.suffix.lower() not in SUFFIXES:
            continue
        if len(relative.parts) > 2 or (
            len(relative.parts) == 2 and not ID_PATTERN.fullmatch(relative.parts[0])
        ):
            raise LoreError(
                f"{path}: lore goes at the top of {folder} (the world's) or in a folder "
                "named by an NPC id (that NPC's)"
            )
        if path.stat().st_size > MAX_FILE_BYTES:
            raise LoreError(f"{path}: over {MAX_FILE_BYTES} bytes; split it")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise LoreError(f"{path}: not UTF-8 text") from None
        npc_id = relative.parts[0] if len(relative.parts) == 2 else ""
        found += [Passage(npc_id, relative.as_posix(), p) for p in passages(text)]
        if len(found) > MAX_PASSAGES:
            raise LoreError(f"{folder}: over {MAX_PASSAGES} passages")
    return found


class LoreBook:
    """Passages and their embeddings; nearest() answers for one NPC and one scene."""

    def __init__(self, found: list[Passage], encoder):
        self.passages = found
        self.encoder = encoder
        texts = [p.text for p in found]
        self.vectors = encoder.encode(texts) if texts else np.zeros((0, 1), np.float32)

    @classmethod
    def empty(cls) -> LoreBook:
        book = cls.__new__(cls)
        book.passages, book.encoder, book.vectors = [], None, np.zeros((0, 1), np.float32)
        return book

    def sources(self, npc_id: str) -> dict[str, int]:
        """The files an NPC knows (the world's and its own), with their passage counts."""
        out: dict[str, int] = {}
        for p in self.passages:
            if p.npc_id in ("", npc_id):
                out[p.source] = out.get(p.source, 0) + 1
        return out

    def nearest(self, npc_id: str, query, k: int, threshold: float) -> list[Passage]:
        """The k passages the NPC knows nearest a scene (its embedding), at least
        `threshold` in cosine similarity, nearest first."""
        known = [i for i, p in enumerate(self.passages) if p.npc_id in ("", npc_id)]
        if not known:
            return []
        scores = self.vectors[known] @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return [self.passages[known[i]] for i in order if scores[i] >= threshold]


def load_lore(folder: Path | None, encoder) -> LoreBook:
    """The lore book of a folder (an empty one for None)."""
    return LoreBook(read_lore(folder), encoder) if folder is not None else LoreBook.empty()
