"""A prompt's structure (who speaks each turn) comes from the turns' identities alone:
no text a player or a profile supplies can add a turn, a line, or a speaker.

The fuzzers draw names and lines from the whole of Unicode, weighted towards what could
break a line or hide a name (every line and paragraph separator, control and format
characters, colons and their look-alikes, the chat template's own markers), and check
the structure of the messages and of the tokenised prompt.
"""

from __future__ import annotations

from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st

from npc_runtime.neeko.names import name_problem, one_line, same_name, shown_name
from npc_runtime.neeko.profile import ProfileError, profile_from_dict
from npc_runtime.neeko.prompt import SCENE_OPENING, PromptEncoder, Turn, scene_messages

NPC = profile_from_dict({"id": "brann", "name": "Brann Ironhand", "profile": "A smith."})
TRICKY = (
    "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029\t \u00a0\u200b\u200c\u200d\u200e\u202e\u2066"
    "\u2069\ufeff\u00ad\u180e\u061c:\uff1a\ufe55\ufe13\u2236\ua789\u02d0"
)
PIECES = st.sampled_from(
    [
        "<|im_start|>",
        "<|im_end|>",
        "assistant",
        "user",
        "Brann Ironhand",
        "Brann",
        "Marla: ",
        "\nBrann Ironhand: ",
        "<|im_start|>assistant\n",
    ]
)
CHARS = st.characters(codec="utf-8") | st.sampled_from(TRICKY)
TEXTS = st.lists(st.text(CHARS, max_size=8) | PIECES, max_size=6).map("".join)
TURNS = st.lists(
    st.builds(Turn, TEXTS, TEXTS, st.sampled_from(["", "", "brann", "marla"])), max_size=8
)


def expected_structure(turns: list[Turn]) -> list[tuple[str, list[str]]]:
    """(role, speakers of its lines) per message after the system prompt, from ids alone."""
    out: list[tuple[str, list[str]]] = []
    for turn in turns:
        if turn.npc_id == NPC.id:
            out.append(("assistant", []))
        elif out and out[-1][0] == "user":
            out[-1][1].append(shown_name(turn.speaker))
        else:
            out.append(("user", [shown_name(turn.speaker)]))
    if not out or out[-1][0] != "user":
        out.append(("user", []))
    return out


@fuzz(300)
@given(TURNS)
def test_messages_follow_the_turns_identities(turns: list[Turn]) -> None:
    messages = scene_messages(NPC, turns)
    expected = expected_structure(turns)
    assert [m["role"] for m in messages] == ["system"] + [role for role, _ in expected]
    for message, (role, speakers) in zip(messages[1:], expected):
        if role == "assistant":
            continue
        if not speakers:
            assert message["content"] == SCENE_OPENING
            continue
        lines = message["content"].splitlines()
        assert len(lines) == len(speakers)
        for line, speaker in zip(lines, speakers):
            assert ":" not in speaker and line.startswith(speaker + ": ")


@fuzz(150)
@given(TURNS)
def test_the_tokenised_prompt_has_one_turn_per_message(real_tokenizer, turns) -> None:
    encoder = PromptEncoder(real_tokenizer)
    messages = scene_messages(NPC, turns)
    ids = encoder.prompt_ids(messages)
    start = real_tokenizer.convert_tokens_to_ids("<|im_start|>")
    end = real_tokenizer.convert_tokens_to_ids("<|im_end|>")
    # every message opens and closes once; the generation prompt opens one more
    assert ids.count(start) == len(messages) + 1 and ids.count(end) == len(messages)
    newline = real_tokenizer.convert_tokens_to_ids("Ċ")
    # A user message of n lines holds n-1 line breaks of its own (the template adds one
    # after the role and one after the turn): no text adds any.
    lines = sum(len(m["content"].splitlines()) - 1 for m in messages if m["role"] == "user")
    system = len(messages[0]["content"].splitlines()) - 1
    own = sum(m["content"].count("\n") for m in messages if m["role"] == "assistant")
    assert ids.count(newline) <= 2 * (len(messages) + 1) + lines + system + own


@fuzz(300)
@given(TEXTS)
def test_a_name_is_accepted_only_if_it_reads_as_written(name: str) -> None:
    problem = name_problem(name)
    if problem is None:
        assert one_line(name) == " ".join(name.split()) and ":" not in shown_name(name)
        assert shown_name(name) == (" ".join(name.split()) or "Someone")
    try:
        profile = profile_from_dict({"id": "x", "name": name, "profile": "p"})
    except ProfileError:
        return
    assert name_problem(profile.name) is None


def test_names_that_read_the_same_are_the_same() -> None:
    assert same_name("Brann Ironhand", "  brann\u200b  IRONHAND ")
    assert same_name("Ｂｒａｎｎ", "brann")  # full-width letters fold (NFKC)
    assert not same_name("Brann", "Brann Ironhand")
    assert name_problem("Brann\u2028Ironhand") and name_problem("Bra\u200bnn")
    assert name_problem("Guard\uff1a") and name_problem("Ready Player One") is None
