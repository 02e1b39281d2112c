"""Token ids to streamed text: incremental detokenisation and stop strings.

A byte-level BPE token can end in the middle of a UTF-8 character, and a stop string can
be split across tokens. The reply's text is therefore released only when it is final:
complete characters, and never a tail that might still turn into a stop string (which is
cut from the reply, not shown and then taken back).
"""

from __future__ import annotations

from tokenizers.decoders import DecodeStream


class _OffsetDecoder:
    """For tokenizers without a Rust backend: decode a sliding window of ids and keep
    what is new once it no longer ends in a replacement character."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def step(self, token_id: int) -> str | None:
        self.ids.append(token_id)
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix : self.read], skip_special_tokens=True)
        after = decode(self.ids[self.prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return None


class TextStream:
    """Feed token ids, get the text that may be shown now; `stopped` once a stop string
    appeared (the text then ends right before it)."""

    def __init__(self, tokenizer, stop: tuple[str, ...] = ()):
        backend = getattr(tokenizer, "_tokenizer", None)
        if backend is not None:
            self._backend = backend
            self._stream = DecodeStream(skip_special_tokens=True)
        else:
            self._backend = None
            self._stream = _OffsetDecoder(tokenizer)
        self.stop = stop
        self.text = ""  # everything decoded so far, stop string cut once found
        self.emitted = 0  # how much of `text` has been released
        self.stopped = False

    def _decode(self, token_id: int) -> str:
        if self._backend is not None:
            piece = self._stream.step(self._backend, token_id)
        else:
            piece = self._stream.step(token_id)
        return piece or ""

    def push(self, token_id: int) -> str:
        """Add one generated token; return the newly releasable text (maybe '')."""
        if self.stopped:
            return ""
        self.text += self._decode(token_id)
        if self.stop:
            longest = max(len(s) for s in self.stop)
            window = max(0, self.emitted - longest + 1)
            hits = [i for s in self.stop if (i := self.text.find(s, window)) >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.stopped = True
                return self.flush()
            hold = self._partial_stop_length()
            end = len(self.text) - hold
        else:
            end = len(self.text)
        out = self.text[self.emitted : end] if end > self.emitted else ""
        self.emitted = max(self.emitted, end)
        return out

    def _partial_stop_length(self) -> int:
        """Length of the longest tail of the text that begins some stop string."""
        best = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), best, -1):
                if self.text.endswith(s[:n]):
                    best = n
                    break
        return best

    def flush(self) -> str:
        """At the end of the reply: release whatever was held back."""
        out = self.text[self.emitted :]
        self.emitted = len(self.text)
        return out
