"""The RAG baseline: the profile plus the character's most similar training replies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from ..neeko.data import Sample
from ..neeko.encoder import RoleEncoder
from ..neeko.profile import NpcProfile


def scene_text(sample: Sample, turns: int = 2) -> str:
    return " ".join(t.text for t in sample.context[-turns:]) or sample.character


class ReplyRetriever:
    """Per character, the k training replies nearest to a scene (role-encoder cosine)."""

    def __init__(self, encoder: RoleEncoder, train: Mapping[str, Sequence[Sample]], k: int = 3):
        self.encoder = encoder
        self.k = k
        self.replies = {c: [s.reply for s in rows] for c, rows in train.items()}
        self.vectors = {c: encoder.encode(r) for c, r in self.replies.items()}

    def profiles(
        self, samples: Sequence[Sample], profiles: Mapping[str, NpcProfile]
    ) -> list[NpcProfile]:
        """Each sample's character profile with the retrieved replies as example lines."""
        queries = self.encoder.encode([scene_text(s) for s in samples])
        out = []
        for sample, q in zip(samples, queries):
            sims = self.vectors[sample.character] @ q
            top = np.argsort(-sims)[: self.k]
            examples = [self.replies[sample.character][i][:300] for i in top]
            out.append(replace(profiles[sample.character], examples=examples))
        return out
