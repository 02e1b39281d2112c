"""Cutting a streamed reply into sentences as they complete, for subtitles and TTS.

A sentence ends at '.', '!', '?' or '…' (with any closing quotes or brackets after it)
once the next character is whitespace, or at a line break. Waiting for that whitespace
keeps "3.5" and "..." whole; abbreviations such as "Mr." are cut, which costs a TTS
voice a short pause and nothing more.

Each token is scanned and copied once: a search sees only the text from where the last
one could still be completed (the trailing run of end marks and closing quotes), the
text before it is held in pieces, so a long reply without a sentence end costs linear
time, not quadratic.
"""

from __future__ import annotations

import re

_END = re.compile(r"(?:[.!?…]+[\"'”’)\]]*\s+|\n+)")
_MARKS = frozenset(".!?…\"'”’)]")  # a run of these may end a sentence once whitespace comes


class SentenceSplitter:
    def __init__(self) -> None:
        self._held: list[str] = []  # the unfinished sentence, up to where no end can start
        self._tail = ""  # the rest of it: the only text a search must still see
        self._emitted: list[str] = []  # everything handed out so far, as generated
        self.count = 0

    def feed(self, text: str) -> list[tuple[int, str]]:
        """Add generated text; the sentences it completes, (index, stripped text)."""
        self._tail += text
        out = []
        while match := _END.search(self._tail):
            cut = match.end()
            whole = "".join(self._held) + self._tail[:cut]
            self._held, self._tail = [], self._tail[cut:]
            self._emitted.append(whole)
            if sentence := whole.strip():
                out.append((self.count, sentence))
                self.count += 1
        keep = len(self._tail)
        while keep > 0 and self._tail[keep - 1] in _MARKS:
            keep -= 1
        if keep:
            self._held.append(self._tail[:keep])
            self._tail = self._tail[keep:]
        return out

    def finish(self, final_text: str) -> list[tuple[int, str]]:
        """The rest of the reply, given its final text (which the engine may have trimmed
        of a stop string): only what was not handed out already."""
        rest = "".join(self._held) + self._tail
        emitted = "".join(self._emitted).lstrip()
        if final_text.startswith(emitted):
            rest = final_text[len(emitted) :]
        self._held, self._tail = [], ""
        sentence = rest.strip()
        if sentence:
            self.count += 1
            return [(self.count - 1, sentence)]
        return []
