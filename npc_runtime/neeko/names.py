"""Names and lines as a prompt shows them.

A prompt shows every other speaker's turn as one line, 'Name: text'. Whatever a player or
a profile writes must keep that shape: no text may start a line, no name may hold the
': ' that ends a name. These helpers are that rule, in one place.
"""

from __future__ import annotations

import re
import unicodedata

# Characters that end a line in some renderer or tokenizer (\n, \r, \v, \f, the file,
# group and record separators, NEL, LINE and PARAGRAPH SEPARATOR) and the rest of the
# control and format characters (zero-width, bidirectional overrides), which can hide a
# name or make one text look like another. In a prompt each turn is exactly one line.
_LINE_OR_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_COLONS = re.compile("[:\u02d0\u02f8\u2236\ua789\ufe13]")


def _is_colon(char: str) -> bool:
    """':' and what reads as one (full-width and small forms fold to ':' under NFKC)."""
    return bool(_COLONS.match(char)) or ":" in unicodedata.normalize("NFKC", char)


def one_line(text: str) -> str:
    """`text` as one line of a scene: every line break, control or format character
    becomes a space, runs of spaces one space."""
    out = [" " if unicodedata.category(c) in _LINE_OR_INVISIBLE or c.isspace() else c for c in text]
    return " ".join("".join(out).split())


def shown_name(name: str) -> str:
    """A speaker's name as the prompt shows it, before ': ': one line, no colon, so the
    name can never end early or begin another turn."""
    return one_line("".join(" " if _is_colon(c) else c for c in name)) or "Someone"


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a speaker's name (it would read differently in a prompt than
    it was written), or None."""
    if any(unicodedata.category(c) in _LINE_OR_INVISIBLE for c in name):
        return "must be one line without control or invisible (format) characters"
    if any(map(_is_colon, name)):
        return "must be free of ':' (a prompt shows each line as 'Name: text')"
    return None


def same_name(a: str, b: str) -> bool:
    """Whether two names read the same: compatibility forms folded (NFKC), case, invisible
    characters and spacing ignored."""

    def key(name: str) -> str:
        return one_line(unicodedata.normalize("NFKC", name)).casefold()

    return key(a) == key(b)
