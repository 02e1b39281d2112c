"""Which character does a line sound like? The judge of generated replies.

A judge that cannot tell real replies apart cannot tell systems apart either: the
role encoder's embeddings alone recognised 22-25% of real held-out Shakespeare replies
(13 characters). Three views of a line are combined, each a classifier of its own,
by summing their log-probabilities: character 1-4-grams (spelling, punctuation,
archaic forms) with TF-IDF and logistic regression, word counts with naive Bayes
(names, places, pet words), and the role encoder's embedding (meaning). On Shakespeare
the three together recognise about a third of all real held-out replies and close to
half of those of 15 words or more; what bounds them is the short line ("My lord?"),
which no reply-only judge can attribute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..neeko.encoder import RoleEncoder

LONG_WORDS = 15  # generated replies (40 tokens) are about this long or longer


@dataclass(frozen=True)
class Share:
    """A share of correct attributions with its Wilson 95% interval."""

    accuracy: float
    low: float
    high: float
    replies: int

    @classmethod
    def of(cls, hits: Sequence[bool]) -> Share:
        n = len(hits)
        if n == 0:
            return cls(0.0, 0.0, 0.0, 0)
        p, z = sum(hits) / n, 1.96
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return cls(p, max(0.0, centre - half), min(1.0, centre + half), n)

    def as_dict(self) -> dict:
        return asdict(self)


class StyleClassifier:
    """Character n-grams, words and role embeddings of real replies, by character."""

    def __init__(self, encoder: RoleEncoder, replies: Mapping[str, Sequence[str]], seed: int = 0):
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.naive_bayes import MultinomialNB

        self.encoder = encoder
        texts = [t for rows in replies.values() for t in rows]
        labels = [c for c, rows in replies.items() for _ in rows]
        if len(set(labels)) < 2:
            raise ValueError("the style classifier needs real replies of two characters or more")
        self.chars = TfidfVectorizer(
            analyzer="char", ngram_range=(1, 4), sublinear_tf=True, min_df=2, lowercase=False
        )
        self.words = CountVectorizer()
        self.views = [
            (
                self.chars.transform,
                LogisticRegression(max_iter=3000, C=10.0, random_state=seed).fit(
                    self.chars.fit_transform(texts), labels
                ),
            ),
            (
                self.words.transform,
                MultinomialNB(alpha=0.1).fit(self.words.fit_transform(texts), labels),
            ),
            (
                self._embed,
                LogisticRegression(max_iter=3000, random_state=seed).fit(
                    self._embed(texts), labels
                ),
            ),
        ]
        self.classes = self.views[0][1].classes_

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(texts))

    def predict(self, texts: Sequence[str]) -> list[str]:
        if not texts:
            return []
        log_p = sum(
            np.log(np.clip(model.predict_proba(view(texts)), 1e-12, None))
            for view, model in self.views
        )
        return list(self.classes[np.argmax(log_p, axis=1)])

    def score(self, texts: Sequence[str], intended: Sequence[str]) -> Share:
        return Share.of([p == t for p, t in zip(self.predict(texts), intended)])

    def ceiling(self, texts: Sequence[str], intended: Sequence[str]) -> dict:
        """The judge on real replies: all of them, and those as long as generated ones."""
        long = [(t, c) for t, c in zip(texts, intended) if len(t.split()) >= LONG_WORDS]
        return {
            "all": self.score(texts, intended).as_dict(),
            f"at_least_{LONG_WORDS}_words": self.score(
                [t for t, _ in long], [c for _, c in long]
            ).as_dict(),
            "chance": 1 / len(self.classes),
        }
