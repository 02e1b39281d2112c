"""`npc-runtime chat`: talk to the daemon's NPCs from a terminal, replies streaming in.

Lines starting with '/' are commands (see HELP); anything else is said to the current NPC
in the current session, so every NPC you switch to hears what was said before.
"""

from __future__ import annotations

from collections.abc import Callable

from .client import NpcClient, NpcRuntimeError

HELP = (
    "/npc ID  talk to another NPC   /npcs  list NPCs   /history  the session so far\n"
    "/reset   forget this session   /help  this text   /quit  leave (or Ctrl-D)"
)


class Chat:
    def __init__(
        self,
        client: NpcClient,
        npc_id: str,
        session_id: str,
        speaker_name: str | None,
        write: Callable[[str], None],
        max_tokens: int | None = None,
    ):
        self.client = client
        self.npc_id = npc_id
        self.session_id = session_id
        self.speaker_name = speaker_name
        self.write = write
        self.sampling = {"max_tokens": max_tokens} if max_tokens else None
        self.names: dict[str, str] = {}

    def _name(self, npc_id: str) -> str:
        if npc_id not in self.names:
            self.names[npc_id] = self.client.get_npc(npc_id).profile.name
        return self.names[npc_id]

    def start(self) -> None:
        """Check the NPC exists before the first line, and greet."""
        self.write(f"Talking to {self._name(self.npc_id)} in session '{self.session_id}'.\n")
        self.write(HELP + "\n")

    def handle(self, line: str) -> bool:
        """One line of input; False when the user wants to leave."""
        line = line.strip()
        if not line:
            return True
        try:
            if line.startswith("/"):
                return self._command(line)
            self._say(line)
        except NpcRuntimeError as exc:
            self.write(f"\n[{exc.code}] {exc.message}\n")
        return True

    def _command(self, line: str) -> bool:
        name, _, arg = line[1:].partition(" ")
        if name in ("quit", "exit", "q"):
            return False
        if name == "npc" and arg.strip():
            npc_id = arg.strip()
            self.write(f"Now talking to {self._name(npc_id)}.\n")
            self.npc_id = npc_id
        elif name == "npcs":
            for npc in self.client.list_npcs():
                mark = "*" if npc.profile.id == self.npc_id else " "
                self.write(f"{mark} {npc.profile.id:<20} {npc.profile.name}\n")
        elif name == "history":
            try:
                turns = self.client.get_session(self.session_id).turns
            except NpcRuntimeError as exc:
                if exc.code != "NOT_FOUND":
                    raise
                turns = []
            for turn in turns:
                self.write(f"{turn.speaker_name}: {turn.text}\n")
            if not turns:
                self.write("(nothing said yet)\n")
        elif name == "reset":
            removed = self.client.reset_session(self.session_id)
            self.write(f"Session '{self.session_id}' forgotten ({removed} turns).\n")
        else:
            self.write(HELP + "\n")
        return True

    def _say(self, text: str) -> None:
        self.write(f"{self._name(self.npc_id)}: ")
        events = self.client.speak(
            self.npc_id,
            text,
            session_id=self.session_id,
            speaker_name=self.speaker_name,
            sampling=self.sampling,
        )
        try:
            for event in events:
                if event.HasField("token"):
                    self.write(event.token.text)
                elif event.HasField("final") and not event.final.stored:
                    self.write(" [not stored]")
        except KeyboardInterrupt:  # closing the stream cancels the reply on the server
            events.close()
            self.write(" [interrupted]")
        self.write("\n")


def run(chat: Chat, read: Callable[[str], str] = input) -> int:
    chat.start()
    while True:
        try:
            line = read("You: ")
        except (EOFError, KeyboardInterrupt):
            chat.write("\n")
            return 0
        if not chat.handle(line):
            return 0
