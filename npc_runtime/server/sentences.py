"""Cutting a streamed reply into sentences as they complete, for subtitles and TTS.

A sentence ends at '.', '!', '?' or '…' (with any closing quotes or brackets after it)
once the next character is whitespace, or at a line break. Waiting for that whitespace
keeps "3.5" and "..." whole; abbreviations such as "Mr." are cut, which costs a TTS
voice a short pause and nothing more.

Each token is scanned once: a search starts where the last one could still be completed
(the trailing run of end marks and closing quotes), so a long reply without a sentence
end costs linear time, not quadratic.
"""

from __future__ import annotations

import re

_END = re.compile(r"(?:[.!?…]+[\"'”’)\]]*\s+|\n+)")
_MARKS = frozenset(".!?…\"'”’)]")  # a run of these may end a sentence once whitespace comes


class SentenceSplitter:
    def __init__(self) -> None:
        self._buffer = ""
        self._scan = 0  # no sentence end starts before this offset in _buffer
        self._emitted = ""  # everything handed out so far, as generated
        self.count = 0

    def feed(self, text: str) -> list[tuple[int, str]]:
        """Add generated text; the sentences it completes, (index, stripped text)."""
        self._buffer += text
        out = []
        while match := _END.search(self._buffer, self._scan):
            cut = match.end()
            sentence = self._buffer[:cut].strip()
            self._emitted += self._buffer[:cut]
            self._buffer = self._buffer[cut:]
            self._scan = 0
            if sentence:
                out.append((self.count, sentence))
                self.count += 1
        scan = len(self._buffer)
        while scan > 0 and self._buffer[scan - 1] in _MARKS:
            scan -= 1
        self._scan = scan
        return out

    def finish(self, final_text: str) -> list[tuple[int, str]]:
        """The rest of the reply, given its final text (which the engine may have trimmed
        of a stop string): only what was not handed out already."""
        rest = self._buffer
        if final_text.startswith(self._emitted.lstrip()):
            rest = final_text[len(self._emitted.lstrip()) :]
        self._buffer = ""
        self._scan = 0
        sentence = rest.strip()
        if sentence:
            self.count += 1
            return [(self.count - 1, sentence)]
        return []
