"""The cast on disk: a folder with cast.json and one safetensors file per block.

Block files are named by their content hash and never overwritten; cast.json is the
single commit point, replaced atomically. A crash at any moment of a save therefore
leaves either the old manifest (whose files are all still there) or the new one.
Unreferenced block files are removed only after the new manifest is in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..base_model import (
    DEFAULT_BASE_NAME,
    BaseModelError,
    default_base_path,
    fingerprint_mismatch,
    load_base,
)
from .cast import HOUSE, KIND_BLOCK, KIND_FUSED, Block, Cast, CastError, Npc
from .config import GateConfig, LoraConfig
from .profile import ProfileError, profile_from_dict, validate_id

MANIFEST = "cast.json"
FORMAT = "npc-runtime-cast"
VERSION = 1
_STORAGE = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600, and so it stays: a cast is the user's own (profiles,
        # trained blocks), not for every account on a player's machine.
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _base_record(cast: Cast) -> dict:
    path = cast.base.path
    is_default = path == default_base_path() if _default_installed() else False
    return {
        "name": DEFAULT_BASE_NAME if is_default else cast.base.name,
        "path": None if is_default else str(path),
        "fingerprint": cast.fingerprint,
    }


def _default_installed() -> bool:
    try:
        default_base_path()
    except BaseModelError:
        return False
    return True


def _block_bytes(cast: Cast, block_id: str) -> bytes:
    storage = _STORAGE[cast.storage_dtype]
    state = cast.neeko.block_state(block_id)
    if storage != next(iter(state.values())).dtype:
        # Keep memory equal to disk, so a saved and reloaded cast speaks identically.
        with torch.no_grad():
            for tensor in state.values():
                tensor.copy_(tensor.to(storage))
        cast.neeko.invalidate()
    tensors = {k: v.to(storage).contiguous().cpu() for k, v in state.items()}
    # One metadata key only: safetensors writes a map, whose order varies per process,
    # and identical blocks must serialise to identical (content-addressed) files.
    return st_save(tensors, metadata={"npc_runtime_block": block_id})


def save_cast(cast: Cast, folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    (folder / "blocks").mkdir(mode=0o700, exist_ok=True)
    blocks = [*cast.blocks.values(), *([cast.house] if cast.house else [])]
    for block in blocks:
        data = _block_bytes(cast, block.id)
        digest = hashlib.sha256(data).hexdigest()
        rel = f"blocks/{block.id}-{digest[:12]}.safetensors"
        if not (folder / rel).exists():
            _write_atomic(folder / rel, data)
        block.file, block.sha256 = rel, digest
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "base": _base_record(cast),
        "lora": cast.lora.to_json(),
        "gate": {"temperature": cast.gate.temperature, "top_k": cast.gate.top_k},
        "encoder": {"path": cast.encoder_path},
        "storage_dtype": cast.storage_dtype,
        "blocks": [
            {
                "id": b.id,
                "file": b.file,
                "sha256": b.sha256,
                "role_embedding": b.role_embedding.tolist(),
            }
            for b in cast.blocks.values()
        ],
        "house": ({"file": cast.house.file, "sha256": cast.house.sha256} if cast.house else None),
        "npcs": [
            {
                **npc.profile.to_json(),
                "kind": npc.kind,
                "blend": npc.blend,
                "role_embedding": npc.role_embedding.tolist(),
            }
            for npc in cast.npcs.values()
        ],
    }
    _write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1).encode())
    keep = {b.file for b in blocks}
    for stale in (folder / "blocks").glob("*"):
        if f"blocks/{stale.name}" not in keep:
            stale.unlink(missing_ok=True)
    for stale in folder.glob(f".{MANIFEST}.*.tmp"):
        stale.unlink(missing_ok=True)


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise CastError(f"cast folder not found: {folder}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CastError(f"{path}: missing, so {folder} is not a cast") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CastError(f"{path}: corrupt or truncated manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CastError(f"{path}: not an npc-runtime cast manifest")
    if manifest.get("version") != VERSION:
        raise CastError(
            f"{path}: cast format version {manifest.get('version')} is not supported "
            f"(this npc-runtime reads version {VERSION})"
        )
    return manifest


def _read_block(folder: Path, entry: dict) -> dict[str, torch.Tensor]:
    rel = entry.get("file")
    if not isinstance(rel, str) or not rel.startswith("blocks/") or ".." in rel:
        raise CastError(f"{folder / MANIFEST}: block {entry.get('id')!r} has an invalid file entry")
    path = folder / rel
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CastError(f"{path}: block file missing (block {entry['id']!r})") from None
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise CastError(f"{path}: corrupt or truncated (checksum does not match cast.json)")
    try:
        return st_load(data)
    except (SafetensorError, ValueError) as exc:
        raise CastError(f"{path}: not a readable safetensors file ({exc})") from None


def verify_cast(path: str | os.PathLike) -> None:
    """Check the manifest and every block file (present, checksum, readable) without
    loading a model: seconds sooner than load_cast, before anything else starts."""
    folder = Path(path)
    manifest = read_manifest(folder)
    entries = manifest.get("blocks")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CastError(f"{folder / MANIFEST}: invalid manifest ('blocks' is not a list)")
    for entry in entries:
        _read_block(folder, entry)
    house = manifest.get("house")
    if house is not None:
        _read_block(folder, _house_entry(folder, house))


def _house_entry(folder: Path, house: object) -> dict:
    if not isinstance(house, dict):
        raise CastError(f"{folder / MANIFEST}: invalid manifest ('house' is not an object)")
    return {**house, "id": HOUSE}


def _resolve_base(manifest: dict, base) -> str | None:
    if base is not None:
        return str(base)
    recorded = manifest["base"].get("path")
    if recorded is None:
        return None
    if not Path(recorded).exists():
        raise CastError(f"the cast's base model {recorded} is not there any more: pass --base PATH")
    return recorded


def load_cast(
    path: str | os.PathLike,
    base: str | os.PathLike | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> Cast:
    """Load a cast folder onto its base model (or onto `base`, when the model has moved)."""
    folder = Path(path)
    manifest = read_manifest(folder)
    try:
        lora = LoraConfig.from_json(manifest["lora"])
        gate = GateConfig(**manifest["gate"])
        storage_dtype = manifest.get("storage_dtype", "float32")
        if storage_dtype not in _STORAGE:
            raise ValueError(f"unknown storage_dtype {storage_dtype!r}")
        base_model = load_base(_resolve_base(manifest, base), device=device, dtype=dtype)
    except (KeyError, TypeError, ValueError) as exc:
        raise CastError(f"{folder / MANIFEST}: invalid manifest ({exc})") from None
    cast = Cast(
        base_model,
        lora,
        gate,
        encoder_path=manifest.get("encoder", {}).get("path"),
        storage_dtype=storage_dtype,
        path=folder,
    )
    problem = fingerprint_mismatch(manifest["base"].get("fingerprint", {}), cast.fingerprint)
    if problem:
        raise CastError(
            f"{folder / MANIFEST}: made for base model {manifest['base'].get('name')!r}, "
            f"not for {base_model.path}: {problem}"
        )
    try:
        if manifest.get("house") is not None:
            entry = _house_entry(folder, manifest["house"])
            cast.house = _load_block(cast, folder, entry, HOUSE, np.zeros(0, dtype=np.float32))
        for entry in manifest["blocks"]:
            block_id = validate_id(entry["id"], "block id")
            role = np.asarray(entry["role_embedding"], dtype=np.float32)
            cast.blocks[block_id] = _load_block(cast, folder, entry, block_id, role)
        for entry in manifest["npcs"]:
            fields = {k: entry[k] for k in entry if k not in ("kind", "blend", "role_embedding")}
            profile = profile_from_dict(fields)
            blend = {str(k): float(v) for k, v in entry["blend"].items()}
            known = set(cast.blocks) | ({HOUSE} if cast.house else set())
            if entry["kind"] not in (KIND_BLOCK, KIND_FUSED) or not set(blend) <= known:
                raise CastError(f"{folder / MANIFEST}: NPC {profile.id!r} has an invalid blend")
            emb = np.asarray(entry["role_embedding"], dtype=np.float32)
            cast.npcs[profile.id] = Npc(profile, entry["kind"], blend, emb)
    except (KeyError, TypeError, ValueError, ProfileError) as exc:
        raise CastError(f"{folder / MANIFEST}: invalid manifest ({exc})") from None
    return cast


def _load_block(cast: Cast, folder: Path, entry: dict, block_id: str, role: np.ndarray) -> Block:
    tensors = _read_block(folder, entry)
    cast.neeko.add_block(block_id)
    try:
        cast.neeko.load_block_state(block_id, tensors)
    except ValueError as exc:
        raise CastError(f"{folder / entry['file']}: {exc}") from None
    return Block(block_id, role, entry["file"], entry["sha256"])
