"""The `npc-runtime` command line: its subcommands, their arguments and defaults.

Kept apart from cli.py (what each command does) so the options a user sees can be read
in one place."""

from __future__ import annotations

import argparse

from .base_model import DTYPES
from .neeko.config import DEFAULT_TARGETS, TrainConfig


def _dtype_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPES,
        help="precision of the base model's weights (default auto: bfloat16 on CUDA; on CPU "
        "int8 to generate, float32 to train)",
    )


def _cast_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cast", help="cast folder")
    p.add_argument("--base", help="base model (HF folder or .gguf) when it has moved")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    _dtype_arg(p)


# The training options: (flag, TrainConfig field, type, help). Their defaults are
# TrainConfig's own, for the API and the command line alike.
_TRAIN_OPTIONS = [
    ("--epochs", "epochs", float, "passes over the records"),
    ("--lr", "learning_rate", float, "learning rate"),
    ("--batch-size", "batch_size", int, "rows per forward pass, of any characters"),
    ("--block-batch-size", "block_batch_size", int, "rows of one character per block update"),
    ("--max-length", "max_length", int, "tokens per example"),
    ("--max-context", "max_context_turns", int, "context turns per example"),
    ("--seed", "seed", int, "random seed"),
]


def _train_args(p: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    for flag, name, kind, text in _TRAIN_OPTIONS:
        default = getattr(defaults, name)
        p.add_argument(
            flag, dest=name, type=kind, default=default, help=f"{text} (default {default:g})"
        )
    p.add_argument("--max-samples", type=int, help="at most this many records per character")


def train_config(args) -> TrainConfig:
    values = {name: getattr(args, name) for _, name, *_ in _TRAIN_OPTIONS}
    return TrainConfig(**values, max_samples_per_character=args.max_samples)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npc-runtime", description="Local NPC voices from one small language model."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="pre-tune a new cast: a block per character and a house")
    p.add_argument("--data", required=True, help="folder with train.jsonl and profiles.jsonl")
    p.add_argument("--out", required=True, help="cast folder to write (a new or empty one)")
    p.add_argument("--force", action="store_true", help="replace the cast already at --out")
    p.add_argument("--base", help="HF model folder or .gguf (default: embedded SmolLM2)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rank", type=int, default=8, help="rank per block (default 8)")
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help="module names (default: the attention projections, apart or fused)",
    )
    p.add_argument("--characters", help="comma-separated subset of characters")
    p.add_argument(
        "--house",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a house block every NPC speaks through beside its own, trained first on all "
        "characters (default: on; --no-house for character blocks alone)",
    )
    p.add_argument("--encoder", help="sentence-transformers folder (default: all-MiniLM-L6-v2)")
    p.add_argument("--save-dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    _dtype_arg(p)
    _train_args(p)

    p = sub.add_parser("expand", help="add a block trained on one new character's dialogue")
    _cast_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--character", required=True)
    p.add_argument("--profile", help="profile file (default: from the data's profiles.jsonl)")
    _train_args(p)

    npc = sub.add_parser("npc", help="list, show, add (fusion) or remove NPCs").add_subparsers(
        dest="npc_command", required=True
    )
    p = npc.add_parser("add", help="register an NPC from a profile file (fusion, no training)")
    _cast_args(p)
    p.add_argument("--profile", required=True, help=".toml or .json with id, name, profile")
    p.add_argument("--json", action="store_true")
    p = npc.add_parser("list", help="the cast's NPCs")
    p.add_argument("cast")
    p.add_argument("--json", action="store_true")
    p = npc.add_parser("show", help="one NPC: kind, blend and profile")
    p.add_argument("cast")
    p.add_argument("npc_id")
    p.add_argument("--json", action="store_true")
    p = npc.add_parser("remove", help="remove an NPC (and its block, if no one else uses it)")
    _cast_args(p)
    p.add_argument("npc_id")

    p = sub.add_parser("say", help="print one reply of an NPC (offline, no daemon)")
    _cast_args(p)
    p.add_argument("--npc", required=True)
    p.add_argument("text")
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-tokens", type=int, default=128, help="as the daemon (default 128)")

    p = sub.add_parser("export", help="write one NPC as a standard peft LoRA adapter")
    _cast_args(p)
    p.add_argument("--npc", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser(
        "bundle", help="a folder a game ships: the daemon frozen (no Python needed), model, cast"
    )
    p.add_argument("--cast", required=True, help="cast folder to ship")
    p.add_argument("--base", help="base model (default: the one the cast records)")
    p.add_argument("--out", required=True, help="bundle folder to write (new or empty)")
    _dtype_arg(p)

    p = sub.add_parser("eval", help="compare ICL, RAG, shared LoRA and Neeko on held-out data")
    p.add_argument("--data", required=True, help="folder with train/test JSONL + profiles")
    p.add_argument("--out", required=True, help="report folder (report.md, results.json, PNG)")
    p.add_argument("--base")
    p.add_argument("--holdout", help="character held out for fusion/expansion (default: last)")
    p.add_argument("--max-test", type=int, default=20, help="held-out replies per character")
    p.add_argument("--attribution", type=int, default=8, help="replies per character")
    p.add_argument("--generate", type=int, default=4, help="generated replies per character")
    p.add_argument(
        "--house",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also a cast with a house block, as a system of its own (default: on)",
    )
    _dtype_arg(p)
    _train_args(p)

    p = sub.add_parser("demo", help="play a short scene with the demo village cast")
    p.add_argument("--cast", help="cast folder (default: the bundled village cast)")
    p.add_argument("--base")
    p.add_argument("--max-tokens", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    _dtype_arg(p)

    p = sub.add_parser("serve", help="run the daemon: the gRPC API over a live cast")
    p.add_argument(
        "--cast",
        help="cast folder, changed in place by RegisterNpc and friends "
        "(default: DATA_DIR/cast, a copy of the bundled village cast)",
    )
    p.add_argument("--base", help="base model (default: the one the cast was made for)")
    p.add_argument("--device", default="cpu")
    _dtype_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument(
        "--data-dir",
        help="sessions database and default cast "
        "(default: $NPC_RUNTIME_DATA or ~/.local/share/npc-runtime)",
    )
    p.add_argument(
        "--token",
        help="require 'authorization: Bearer TOKEN' on every call "
        "(default: $NPC_RUNTIME_TOKEN; required off loopback)",
    )
    p.add_argument(
        "--admin-token",
        help="require this token instead for RegisterNpc, ExpandNpc, "
        "RemoveNpc and ResetSession (default: $NPC_RUNTIME_ADMIN_TOKEN)",
    )
    p.add_argument(
        "--bridge-port",
        type=int,
        default=50052,
        help="engine bridge (WebSocket, JSON or msgpack frames) port; 0: a free one "
        "(default 50052)",
    )
    p.add_argument("--no-bridge", action="store_true", help="no engine bridge")
    p.add_argument(
        "--ready-file",
        help="once serving, write the readiness JSON (ports, pid, version, NPC count) here "
        "too; it is always the first line on stdout",
    )
    p.add_argument(
        "--parent-pid",
        type=int,
        help="shut down cleanly when this process (the game) exits, however it exits",
    )
    p.add_argument(
        "--stop-on-stdin-close",
        action="store_true",
        help="shut down cleanly when standard input closes: the game closes its pipe to "
        "stop the daemon (works on every OS, and a crashed game closes it too)",
    )
    p.add_argument("--token-file", help="read the token from this file (not visible in ps)")
    p.add_argument("--admin-token-file", help="read the admin token from this file")
    p.add_argument(
        "--bridge-max-frame-bytes",
        type=int,
        default=32 * 2**20,
        help="largest bridge frame; larger ones are refused (default 32 MiB)",
    )
    p.add_argument(
        "--bridge-origin",
        action="append",
        default=[],
        help="a browser Origin allowed on the bridge (repeat; default: none, so only "
        "native clients, which send no Origin)",
    )
    p.add_argument(
        "--bridge-max-connections",
        type=int,
        default=64,
        help="bridge connections open at once; more are refused with HTTP 503 (default 64)",
    )
    p.add_argument(
        "--stream-idle-seconds",
        type=float,
        default=60.0,
        help="a client that reads nothing of a reply for this long loses it, and a bridge "
        "client its connection (default 60)",
    )
    p.add_argument(
        "--stream-interval-seconds",
        type=float,
        default=0.02,
        help="a reply's tokens reach its stream at most this often, several to a token "
        "event; its first token comes at once (0: every decode step; default 0.02)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus /metrics on this port (0: a free one; default: no metrics)",
    )
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.add_argument("--no-metrics", action="store_true", help="no /metrics (the default)")
    p.add_argument("--max-streams", type=int, default=32, help="Speak streams at once")
    p.add_argument("--max-text-bytes", type=int, default=4096, help="longest player line")
    p.add_argument(
        "--max-history-turns",
        type=int,
        default=64,
        help="latest turns of a session offered to the model per reply (default 64)",
    )
    p.add_argument(
        "--lore",
        help="lore folder: the world's *.txt/*.md at its top, an NPC's in a folder named by "
        "its id (default: the cast's lore/ folder, if any)",
    )
    p.add_argument("--max-npcs", type=int, default=1000, help="NPCs in the cast (default 1000)")
    p.add_argument(
        "--max-sessions", type=int, default=100_000, help="stored sessions (default 100000)"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])

    p = sub.add_parser("chat", help="talk to the daemon's NPCs in the terminal")
    p.add_argument("--npc", required=True, help="NPC to talk to first (switch with /npc ID)")
    p.add_argument("--session", default="chat", help="session id (default: chat)")
    p.add_argument("--name", help="your name in the scene (default: Player)")
    p.add_argument("--address", default="127.0.0.1:50051")
    p.add_argument("--token", help="default: $NPC_RUNTIME_TOKEN")
    p.add_argument(
        "--admin-token",
        help="for /reset when the server has one (default: $NPC_RUNTIME_ADMIN_TOKEN)",
    )
    p.add_argument("--max-tokens", type=int)
    return parser
