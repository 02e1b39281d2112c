"""Which character does a line sound like? A classifier over role-encoder embeddings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..neeko.data import Sample
from ..neeko.encoder import RoleEncoder


class StyleClassifier:
    """Logistic regression on embeddings of the real training replies, by character."""

    def __init__(self, encoder: RoleEncoder, train: Mapping[str, Sequence[Sample]], seed: int = 0):
        from sklearn.linear_model import LogisticRegression

        self.encoder = encoder
        texts = [s.reply for rows in train.values() for s in rows]
        labels = [c for c, rows in train.items() for _ in rows]
        self.model = LogisticRegression(max_iter=2000, random_state=seed)
        self.model.fit(encoder.encode(texts), labels)

    def predict(self, texts: Sequence[str]) -> list[str]:
        if not texts:
            return []
        return list(self.model.predict(self.encoder.encode(list(texts))))

    def share_correct(self, texts: Sequence[str], intended: Sequence[str]) -> float:
        predicted = self.predict(texts)
        return float(np.mean([p == t for p, t in zip(predicted, intended)])) if texts else 0.0
