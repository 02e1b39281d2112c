"""Watching a Speak stream from a background thread, and holding the server's slow work
until that stream has shown progress: proof, without timing thresholds, that the work
ran while the stream kept producing tokens (if it stalled the stream, the gate would
wait forever and the test fails at its timeout)."""

from __future__ import annotations

import json
import threading
import time

from conftest import VILLAGE

GATE_TIMEOUT = 60.0


class StreamWatcher(threading.Thread):
    def __init__(self, events):
        super().__init__(daemon=True)
        self.events = events
        self.tokens = 0
        self.kinds: list[str] = []
        self.request_id: str | None = None
        self.final = None
        self.error: Exception | None = None
        self.done = False
        self.cond = threading.Condition()

    def run(self) -> None:
        try:
            for event in self.events:
                kind = event.WhichOneof("event")
                with self.cond:
                    self.kinds.append(kind)
                    if kind == "started":
                        self.request_id = event.started.request_id
                    elif kind == "token":
                        self.tokens += len(event.token.token_ids)
                    elif kind == "final":
                        self.final = event.final
                    self.cond.notify_all()
        except Exception as exc:  # checked by the test
            self.error = exc
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()

    def wait_tokens(self, count: int, timeout: float = GATE_TIMEOUT) -> bool:
        with self.cond:
            self.cond.wait_for(lambda: self.tokens >= count or self.done, timeout)
            return self.tokens >= count

    def gate(self, more: int = 3) -> None:
        """Block the caller until `more` further tokens have arrived."""
        target = self.tokens + more
        if not self.wait_tokens(target):
            raise AssertionError(f"the stream stalled at {self.tokens} tokens (done={self.done})")

    def stop(self) -> None:
        self.events.close()
        self.join(GATE_TIMEOUT)


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def village_character(character: str, count: int) -> tuple[dict, list[dict]]:
    """A profile and dialogue records of one character of the example village."""
    profiles = [json.loads(line) for line in (VILLAGE / "profiles.jsonl").read_text().splitlines()]
    row = next(p for p in profiles if p["character"] == character)
    profile = {"id": character, "name": row["name"], "profile": row["profile"]}
    records = []
    for line in (VILLAGE / "train.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["character"] == character and len(records) < count:
            records.append({"context": rec["context"], "reply": rec["reply"]})
    return profile, records
