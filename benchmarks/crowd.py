"""A crowd answering one line: 8 NPCs reacting at once vs the same 8 replies asked one by one.

    python benchmarks/crowd.py [--tokens 48] [--rounds 2] [--dtype auto]

Starts `npc-runtime serve` on the embedded model and the bundled village cast (6 block
NPCs, plus 2 registered by fusion to make 8) and times, through gRPC, the wall time to the
last of 8 replies to one player line: one React call (one batch), then the same 8
requests as Speak calls one after another (each in a session of its own, so every NPC
hears exactly what it hears in React). Each round uses fresh lines, so that the prefix
cache favours neither; the order of the two alternates between rounds, and the best
round of each is kept. Target (issue 17): React at least 3x faster to the last reply.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
LINES = [
    "A dragon was seen over the hills!",
    "A wolf was seen near the old mill!",
    "The king's tax men are at the gate!",
    "The well has run dry this morning!",
    "Strangers camp by the river tonight!",
    "The harvest fair starts tomorrow!",
]
FUSED = [
    {"id": "wren", "name": "Wren", "profile": "A young shepherd who worries about wolves."},
    {"id": "odo", "name": "Odo", "profile": "A retired soldier who guards the village gate."},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from npc_runtime.client import NpcClient

    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "npc_runtime.cli", "serve", "--data-dir", tmp]
        command += ["--port", "0", "--no-bridge", "--dtype", args.dtype]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            ready = json.loads(server.stdout.readline())
            with NpcClient(f"127.0.0.1:{ready['port']}", timeout=600) as client:
                for profile in FUSED:
                    client.register_npc(profile)
                npcs = [n.profile.id for n in client.list_npcs()][:8]
                sampling = {"max_tokens": args.tokens, "seed": 7}
                client.say(npcs[0], "Good morning.", session_id="warm", sampling=sampling)
                lines = iter(LINES * args.rounds)
                crowd, one_by_one, tokens = [], [], 0

                def react() -> float:
                    line = next(lines)
                    started = time.perf_counter()
                    replies = client.react_all(npcs, line, session_id=f"c{len(crowd)}",
                                               sampling=sampling)  # fmt: skip
                    nonlocal tokens
                    tokens = sum(r.completion_tokens for r in replies.values())
                    return time.perf_counter() - started

                def serial() -> float:
                    line = next(lines)
                    started = time.perf_counter()
                    for npc in npcs:
                        client.say(npc, line, session_id=f"s{len(one_by_one)}-{npc}",
                                   sampling=sampling)  # fmt: skip
                    return time.perf_counter() - started

                for i in range(args.rounds):
                    if i % 2 == 0:
                        crowd.append(react())
                        one_by_one.append(serial())
                    else:
                        one_by_one.append(serial())
                        crowd.append(react())
        finally:
            server.terminate()
            server.wait(60)
    best_crowd, best_serial = min(crowd), min(one_by_one)
    print(
        f"crowd ({len(npcs)} NPCs, {args.tokens} tokens max each, {args.dtype}, best of "
        f"{args.rounds}): React at once {best_crowd:.1f} s to the last reply ({tokens} tokens) "
        f"| one by one {best_serial:.1f} s | {best_serial / best_crowd:.2f}x (target >= 3x)"
    )


if __name__ == "__main__":
    main()
