"""Fitting a long scene into the context: linear work, whole chunks dropped from the
front, so consecutive replies of a growing session start at the same turn."""

from __future__ import annotations

import random

import pytest

from npc_runtime.neeko.profile import profile_from_dict
from npc_runtime.neeko.prompt import PromptEncoder, Turn, scene_messages
from npc_runtime.server.service import _window
from npc_runtime.sessions import NPC, PLAYER, StoredTurn

NPC_PROFILE = profile_from_dict({"id": "brann", "name": "Brann Ironhand", "profile": "A smith."})


def scene(n: int, seed: int = 0) -> list[Turn]:
    rng = random.Random(seed)
    turns = []
    for i in range(n):
        words = " ".join(rng.choice(["iron", "ale", "road", "the", "mill"]) for _ in range(40))
        own = i % 2 == 1
        turns.append(Turn("Brann Ironhand" if own else "Player", words, "brann" if own else ""))
    return turns


class Counting(PromptEncoder):
    builds = 0

    def prompt_ids(self, messages):
        self.builds += 1
        return super().prompt_ids(messages)


@pytest.mark.parametrize("chunk", [1, 8])
def test_the_latest_whole_chunks_that_fit(real_tokenizer, chunk):
    encoder = Counting(real_tokenizer)
    turns = scene(500)
    budget = 1500
    ids, start = encoder.fit(NPC_PROFILE, turns, budget, chunk)
    assert len(ids) <= budget and start % chunk == 0
    assert ids == encoder.prompt_ids(scene_messages(NPC_PROFILE, turns[start:]))
    longer = encoder.prompt_ids(scene_messages(NPC_PROFILE, turns[start - chunk :]))
    assert len(longer) > budget  # one chunk more would not fit: nothing dropped needlessly
    encoder.builds = 0
    encoder.fit(NPC_PROFILE, turns, budget, chunk)
    assert encoder.builds <= 4  # the whole scene, the profile alone, one or two starts


def test_consecutive_replies_keep_their_start(real_tokenizer):
    encoder = PromptEncoder(real_tokenizer)
    turns = scene(300, seed=1)
    starts = [encoder.fit(NPC_PROFILE, turns[:n], 1200, 8)[1] for n in range(200, 300, 2)]
    moves = sum(1 for a, b in zip(starts, starts[1:]) if a != b)
    assert starts == sorted(starts) and moves <= len(starts) // 3


def test_the_last_turn_stays(real_tokenizer):
    encoder = PromptEncoder(real_tokenizer)
    turns = scene(20)
    ids, start = encoder.fit(NPC_PROFILE, turns, 10, 8)
    assert start == 19 and len(ids) > 10  # over budget: the caller refuses it
    _, start = encoder.fit(NPC_PROFILE, turns, 10, 8, keep_last=False)
    assert start == 20


def test_the_session_window_moves_a_chunk_at_a_time():
    def history(n):
        return [
            StoredTurn(PLAYER if i % 2 else NPC, "", "P", "x", i, "r", 0.0) for i in range(1, n + 1)
        ]

    firsts = [_window(history(n), 64)[0].seq for n in range(60, 140)]
    assert all(len(_window(history(n), 64)) <= 64 for n in range(60, 140))
    assert {(f - 1) % 8 for f in firsts} == {0}
    assert len(set(firsts)) <= (140 - 60) // 8 + 1
