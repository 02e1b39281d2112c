"""A long session must not freeze the daemon: GetStatus latency while a 500-turn session
speaks, and the warm time to first token of consecutive replies in that session.

    python benchmarks/long_session.py [--turns 500] [--replies 6] [--dtype auto]

Serves the bundled village cast on the embedded model (`npc-runtime serve`, a separate
process), with a session of --turns stored turns of about 60 words each. It measures
GetStatus round trips idle, then during each of --replies consecutive Speaks in the long
session (each reply adds two turns, as a game would), and prints each Speak's time to
first token and cached prompt tokens. Target (issue 13): GetStatus under a long-session
Speak at most 2x idle; consecutive replies hit the prefix cache.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.floor import free_port  # noqa: E402

WORDS = [
    "the",
    "road",
    "north",
    "of",
    "the",
    "mill",
    "is",
    "muddy",
    "again",
    "and",
    "the",
    "smith",
    "wants",
    "ale",
]


def fill_session(data_dir: Path, turns: int) -> None:
    from npc_runtime.sessions import NPC, PLAYER, NewTurn, SessionStore

    store = SessionStore(data_dir / "sessions.sqlite3")
    for i in range(0, turns, 2):
        line = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(60))
        store.append(
            "long",
            f"r{i}",
            [
                NewTurn(PLAYER, "", "Player", f"{i}: {line}"),
                NewTurn(NPC, "brann", "Brann Ironhand", line),
            ],
        )
    store.close()


async def status_latencies(client, stop: asyncio.Event) -> list[float]:
    out = []
    while not stop.is_set():
        t = time.perf_counter()
        await client.status()
        out.append(time.perf_counter() - t)
        await asyncio.sleep(0.01)
    return out


async def measure(address: str, replies: int) -> None:
    from npc_runtime.client import AsyncNpcClient

    async with AsyncNpcClient(address) as client:
        for _ in range(300):
            try:
                await client.status()
                break
            except Exception:
                await asyncio.sleep(1)
        idle = []
        for _ in range(50):
            t = time.perf_counter()
            await client.status()
            idle.append(time.perf_counter() - t)
            await asyncio.sleep(0.01)
        idle_median = statistics.median(idle)
        print(f"GetStatus idle: median {idle_median * 1000:.1f} ms, max {max(idle) * 1000:.1f} ms")
        worst = 0.0
        for n in range(replies):
            stop = asyncio.Event()
            poll = asyncio.create_task(status_latencies(client, stop))
            final = await client.say(
                "brann", f"And then what, part {n}?", session_id="long",
                sampling={"max_tokens": 16, "seed": n},
            )  # fmt: skip
            stop.set()
            during = await poll
            ratio = statistics.median(during) / idle_median
            p95 = sorted(during)[int(0.95 * (len(during) - 1))]
            worst = max(worst, max(during))
            print(
                f"Speak {n + 1}: ttft {final.time_to_first_token_seconds:.2f} s, prompt "
                f"{final.prompt_tokens} tokens ({final.cached_prompt_tokens} cached), total "
                f"{final.total_seconds:.2f} s | GetStatus during it: median "
                f"{statistics.median(during) * 1000:.1f} ms ({ratio:.2f}x idle), p95 "
                f"{p95 * 1000:.1f} ms ({p95 / idle_median:.2f}x), max "
                f"{max(during) * 1000:.1f} ms, {len(during)} calls"
            )
        print(f"GetStatus worst during long-session Speaks: {worst * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--replies", type=int, default=6)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        fill_session(data, args.turns)
        port = free_port()
        cast = ROOT / "npc_runtime" / "assets" / "village" / "cast"
        command = [sys.executable, "-m", "npc_runtime.cli", "serve", "--cast", str(cast)]
        command += ["--data-dir", str(data), "--port", str(port), "--no-metrics"]
        command += ["--no-bridge", "--dtype", args.dtype]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            print(f"session of {args.turns} turns, embedded model, --dtype {args.dtype}")
            asyncio.run(measure(f"127.0.0.1:{port}", args.replies))
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
