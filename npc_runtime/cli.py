"""The `npc-runtime` command."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from .cli_args import build_parser, train_config  # noqa: E402


def _load(args, training: bool = False):
    from .base_model import resolve_dtype
    from .engine.threads import in_passing_thread
    from .neeko.store import load_cast

    dtype = resolve_dtype(args.dtype, args.device, training=training)
    _say(f"loading {args.cast} and its base model ({dtype})...")
    # in a thread that ends with the loading, so that an engine started after it has the
    # cores' OpenMP threads to itself (see engine/threads.py)
    return in_passing_thread(
        lambda: load_cast(args.cast, base=args.base, device=args.device, dtype=dtype)
    )


def _say(line: str) -> None:
    """What a command is doing, on stderr (stdout holds its output)."""
    print(f"npc-runtime: {line}", file=sys.stderr, flush=True)


def _known_npc(cast: str, npc_id: str) -> None:
    """A typo in an NPC id is found in the cast's manifest, before the model loads."""
    from .neeko.store import read_manifest

    ids = [n["id"] for n in read_manifest(Path(cast))["npcs"]]
    if npc_id not in ids:
        raise KeyError(f"no NPC {npc_id!r} in {cast}: there are {', '.join(ids)}")


def _blend_text(blend: dict[str, float]) -> str:
    return ", ".join(f"{b} {w:.3f}" for b, w in blend.items())


def _check_out(out: str, force: bool) -> None:
    """Before any work: --out must be new, empty, or (with --force) a cast to replace.
    A folder of other files is never written into, --force or not."""
    from .neeko.cast import CastError
    from .neeko.store import MANIFEST

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise CastError(f"--out {out} is a file, not a folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not (path / MANIFEST).exists():
        raise CastError(f"--out {out} is a folder of other files, not a cast: choose another")
    if not force:
        raise CastError(
            f"a cast exists at {out}: training would replace it and every NPC added to it "
            "since (fused, expanded). Choose another --out, or pass --force to replace it"
        )


def cmd_train(args) -> int:
    from .neeko.config import GateConfig, LoraConfig
    from .neeko.tuning import pretune

    _check_out(args.out, args.force)

    lora = LoraConfig(
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        target_modules=tuple(t.strip() for t in args.targets.split(",") if t.strip()),
    )
    chars = [c.strip() for c in args.characters.split(",")] if args.characters else None
    _say(f"loading the base model ({args.base or 'the embedded SmolLM2'}) to train on {args.data}")
    cast, report = pretune(
        args.data,
        base=args.base,
        lora=lora,
        gate=GateConfig(),
        train=train_config(args),
        encoder_path=args.encoder,
        storage_dtype=args.save_dtype,
        device=args.device,
        dtype=args.dtype,
        characters=chars,
        house=args.house,
    )
    cast.save(args.out)
    house = " and a house block" if cast.house else ""
    print(
        f"trained {len(cast.blocks)} blocks{house} on {report.samples} examples "
        f"in {report.steps} steps, {report.seconds:.0f} s; cast saved to {args.out}"
    )
    return 0


def cmd_expand(args) -> int:
    from .neeko.profile import load_profile
    from .neeko.store import read_manifest
    from .neeko.tuning import character_data, expand_from_samples

    # The profile, the records and the id are checked before the model loads.
    given = load_profile(args.profile) if args.profile else None
    profile, samples = character_data(args.data, args.character, given)
    if profile.id in {n["id"] for n in read_manifest(Path(args.cast))["npcs"]}:
        raise KeyError(f"an NPC with id {profile.id!r} is in {args.cast} already")
    cast = _load(args, training=True)
    report = expand_from_samples(cast, profile, samples, train_config(args))
    cast.save()
    print(f"added block {args.character!r} ({report.steps} steps, {report.seconds:.0f} s)")
    return 0


def _npc_record(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k != "role_embedding"}


def cmd_npc(args) -> int:
    from .neeko.profile import load_profile
    from .neeko.store import read_manifest

    if args.npc_command in ("list", "show"):
        npcs = {n["id"]: n for n in read_manifest(Path(args.cast))["npcs"]}
        if args.npc_command == "list":
            rows = [_npc_record(n) for n in npcs.values()]
            if args.json:
                print(json.dumps(rows, indent=1))
            for n in [] if args.json else rows:
                print(f"{n['id']:<20} {n['kind']:<6} {n['name']}")
            return 0
        if args.npc_id not in npcs:
            raise KeyError(f"no NPC {args.npc_id!r} in {args.cast}")
        n = _npc_record(npcs[args.npc_id])
        if args.json:
            print(json.dumps(n, indent=1))
        else:
            print(f"id: {n['id']}\nname: {n['name']}\nkind: {n['kind']}")
            print(f"blend: {_blend_text(n['blend'])}\nprofile: {n['profile']}")
        return 0
    if args.npc_command == "add":
        profile = load_profile(args.profile)  # a bad profile file is found before loading
    else:
        _known_npc(args.cast, args.npc_id)
    cast = _load(args)
    if args.npc_command == "add":
        started = time.perf_counter()
        npc = cast.fuse(profile)
        took = (time.perf_counter() - started) * 1000
        cast.save()
        if args.json:
            print(json.dumps({"id": npc.id, "kind": npc.kind, "blend": npc.blend}))
        else:
            print(f"added {npc.id} (fused in {took:.0f} ms): {_blend_text(npc.blend)}")
    else:
        cast.remove_npc(args.npc_id)
        cast.save()
        print(f"removed {args.npc_id}")
    return 0


def cmd_say(args) -> int:
    from .engine import SamplingParams
    from .neeko.prompt import Turn
    from .speak import GREEDY, reply

    _known_npc(args.cast, args.npc)
    cast = _load(args)
    sampling = GREEDY if args.greedy else SamplingParams()
    sampling = replace(sampling, max_tokens=args.max_tokens, seed=args.seed)
    reply(cast, args.npc, [Turn("Player", args.text)], sampling, on_text=_write)
    print()
    return 0


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def cmd_export(args) -> int:
    from .neeko.export import export_peft

    _known_npc(args.cast, args.npc)
    folder = export_peft(_load(args), args.npc, args.out)
    print(f"wrote peft adapter for {args.npc} to {folder}")
    return 0


def cmd_bundle(args) -> int:
    from .bundle import build_bundle

    _say("freezing the daemon with PyInstaller: several minutes")
    report = build_bundle(Path(args.cast), Path(args.out), args.base, args.dtype)
    print(
        f"bundle written to {report.folder}: {report.bytes / 2**20:.0f} MiB, built in "
        f"{report.seconds:.0f} s; start it as {report.folder}/bundle.json says"
    )
    return 0


def cmd_eval(args) -> int:
    from .evaluation.report import write, write_json
    from .evaluation.run import EvalConfig, Evaluation

    config = EvalConfig(
        data=Path(args.data),
        out=Path(args.out),
        base=args.base,
        dtype=args.dtype,
        train=train_config(args),
        holdout=args.holdout,
        max_test_per_character=args.max_test,
        attribution_per_character=args.attribution,
        generate_per_character=args.generate,
        house=args.house,
        seed=args.seed,
    )
    evaluation = Evaluation(config, checkpoint=lambda r: write_json(r, config.out))
    report = write(evaluation.run(), config.out)
    print(report.read_text())
    return 0


def cmd_demo(args) -> int:
    from .demo import play

    return play(args.cast, args.base, args.max_tokens, args.seed, _write, args.dtype)


def _serve_config(args):
    import shutil

    from .demo import ASSETS
    from .server.auth import AuthPolicy
    from .server.config import ServerConfig, ServiceConfig, default_data_dir
    from .server.lifecycle import read_secret

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    cast = Path(args.cast) if args.cast else data_dir / "cast"
    if not args.cast and not (cast / "cast.json").exists():
        # Serve a copy: registrations must not change the cast shipped with the package.
        shutil.copytree(ASSETS / "cast", cast, dirs_exist_ok=True)
        for path in [cast, *cast.rglob("*")]:  # the player's own copy: private to them
            path.chmod(0o700 if path.is_dir() else 0o600)
    return ServerConfig(
        cast=cast,
        data_dir=data_dir,
        base=args.base,
        device=args.device,
        dtype=args.dtype,
        host=args.host,
        port=args.port,
        auth=AuthPolicy(
            token=args.token
            or read_secret(args.token_file, "--token-file")
            or os.environ.get("NPC_RUNTIME_TOKEN")
            or None,
            admin_token=args.admin_token
            or read_secret(args.admin_token_file, "--admin-token-file")
            or os.environ.get("NPC_RUNTIME_ADMIN_TOKEN")
            or None,
        ),
        metrics_host=args.metrics_host,
        metrics_port=None if args.no_metrics else args.metrics_port,
        bridge_port=None if args.no_bridge else args.bridge_port,
        bridge_max_frame_bytes=args.bridge_max_frame_bytes,
        bridge_origins=tuple(args.bridge_origin),
        bridge_max_connections=args.bridge_max_connections,
        stream_idle_seconds=args.stream_idle_seconds,
        stream_interval_seconds=args.stream_interval_seconds,
        lore=Path(args.lore) if args.lore else None,
        service=ServiceConfig(
            max_text_bytes=args.max_text_bytes,
            max_streams=args.max_streams,
            max_history_turns=args.max_history_turns,
            max_npcs=args.max_npcs,
            max_sessions=args.max_sessions,
        ),
    )


def cmd_serve(args) -> int:
    import asyncio

    from transformers.utils import logging as hf_logging

    from .server.daemon import serve
    from .server.lifecycle import announce, error_record

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # One line per event: no progress bars from model loading or profile embedding.
    hf_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    ready = Path(args.ready_file) if args.ready_file else None
    try:
        asyncio.run(serve(_serve_config(args), ready, args.parent_pid, args.stop_on_stdin_close))
    except Exception as exc:
        code = _startup_code(exc)
        if code is None:
            raise
        announce(error_record(code, str(exc)), ready)  # for the game: stdout, ready file
        print(f"npc-runtime: error: {exc}", file=sys.stderr)  # for people
        return 2
    return 0


def _startup_code(exc: Exception) -> str | None:
    """The stable code of a start-up failure (lifecycle.py), None for a bug."""
    from .base_model import BaseModelError
    from .neeko.cast import CastError
    from .neeko.encoder import EncoderError
    from .neeko.profile import ProfileError
    from .server import lifecycle
    from .server.errors import ServiceError
    from .sessions import StoreError

    if isinstance(exc, lifecycle.StartupError):
        return exc.code
    if isinstance(exc, StoreError):
        unwritable = exc.reason in ("read-only", "full", "busy", "io")
        return lifecycle.DATA_DIR_UNWRITABLE if unwritable else lifecycle.SESSIONS_DAMAGED
    if isinstance(exc, CastError | ProfileError):
        return lifecycle.CAST_DAMAGED
    if isinstance(exc, BaseModelError | EncoderError):
        return lifecycle.MODEL_MISSING
    if isinstance(exc, ServiceError | ValueError):  # a host without a token, a bad limit
        return lifecycle.BAD_OPTION
    if isinstance(exc, OSError):
        return lifecycle.DATA_DIR_UNWRITABLE
    return None


def cmd_chat(args) -> int:
    from .chat import Chat, run
    from .client import NpcClient, NpcRuntimeError

    token = args.token or os.environ.get("NPC_RUNTIME_TOKEN")
    admin = args.admin_token or os.environ.get("NPC_RUNTIME_ADMIN_TOKEN")
    with NpcClient(args.address, token=token, admin_token=admin) as client:
        chat = Chat(client, args.npc, args.session, args.name, _write, args.max_tokens)
        try:
            return run(chat)
        except NpcRuntimeError as exc:  # the server is not there, or refuses the NPC
            print(f"npc-runtime: error: {exc}", file=sys.stderr)
            if exc.code == "UNAVAILABLE":
                print(
                    f"npc-runtime: no daemon answers on {args.address}: start one with "
                    "`npc-runtime serve`, or point --address at yours",
                    file=sys.stderr,
                )
            return 2


COMMANDS = {
    "train": cmd_train,
    "expand": cmd_expand,
    "npc": cmd_npc,
    "say": cmd_say,
    "export": cmd_export,
    "bundle": cmd_bundle,
    "eval": cmd_eval,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "chat": cmd_chat,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars are noise in a terminal tool
    from .base_model import BaseModelError
    from .neeko.cast import CastError
    from .neeko.data import DataError
    from .neeko.encoder import EncoderError
    from .neeko.profile import ProfileError

    if args.command != "serve":  # serve sets up its own log; here: warnings, one line each
        logging.basicConfig(level=logging.WARNING, format="npc-runtime: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except (BaseModelError, CastError, DataError, EncoderError, ProfileError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"npc-runtime: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
