"""The two ways a cast learns: pre-tuning a new cast, and expanding an existing one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..base_model import load_base, resolve_dtype
from .cast import Cast, CastError
from .config import GateConfig, LoraConfig
from .data import DataError, read_profiles, read_samples
from .profile import NpcProfile
from .train import Progress, TrainConfig, TrainReport, train_blocks


def pretune(
    data_dir: str | Path,
    base: str | None = None,
    lora: LoraConfig | None = None,
    gate: GateConfig | None = None,
    train: TrainConfig | None = None,
    encoder_path: str | None = None,
    storage_dtype: str = "float32",
    device: str = "cpu",
    dtype: str = "float32",
    characters: list[str] | None = None,
    show_progress: bool = True,
) -> tuple[Cast, TrainReport]:
    """A new cast with one block per character of the data (or of `characters`)."""
    samples = read_samples(data_dir, "train")
    profiles = read_profiles(data_dir)
    wanted = characters or list(samples)
    missing = [c for c in wanted if c not in samples or c not in profiles]
    if missing:
        raise DataError(f"no training records or no profile for: {', '.join(missing)}")
    cast = Cast(
        load_base(base, device=device, dtype=resolve_dtype(dtype, device, training=True)),
        lora or LoraConfig(),
        gate or GateConfig(),
        encoder_path=encoder_path,
        storage_dtype=storage_dtype,
    )
    chosen = [profiles[c] for c in wanted]
    torch.manual_seed((train or TrainConfig()).seed)  # block initialisation
    embeddings = cast.encoder.encode([p.role_text() for p in chosen])
    for profile, emb in zip(chosen, embeddings):
        cast.add_block_npc(profile, emb)
    report = train_blocks(
        cast,
        {c: samples[c] for c in wanted},
        profiles,
        train or TrainConfig(),
        show_progress=show_progress,
    )
    return cast, report


def expand(
    cast: Cast,
    data_dir: str | Path,
    character: str,
    profile: NpcProfile | None = None,
    train: TrainConfig | None = None,
    on_step: Callable[[Progress], None] | None = None,
    show_progress: bool = True,
) -> TrainReport:
    """Add a block for `character`, trained on its records only; old blocks stay frozen."""
    profile, samples = character_data(data_dir, character, profile)
    return expand_from_samples(cast, profile, samples, train, on_step, show_progress)


def character_data(
    data_dir: str | Path, character: str, profile: NpcProfile | None = None
) -> tuple[NpcProfile, list]:
    """One character's profile (from the data unless given) and training records; needs
    no model, so commands call it before loading one."""
    samples = read_samples(data_dir, "train")
    if character not in samples:
        raise DataError(f"no training records for {character!r} in {data_dir}")
    if profile is None:
        profiles = read_profiles(data_dir)
        if character not in profiles:
            raise DataError(f"no profile for {character!r} in {data_dir}/profiles.jsonl")
        profile = profiles[character]
    return profile, samples[character]


def expand_from_samples(
    cast: Cast, profile: NpcProfile, samples, train=None, on_step=None, show_progress=True
) -> TrainReport:
    if not samples:
        raise CastError(f"expansion of {profile.id!r} needs at least one dialogue record")
    cast.add_block_npc(profile)
    try:
        return train_blocks(
            cast,
            {profile.id: samples},
            {profile.id: profile},
            train or TrainConfig(),
            on_step=on_step,
            show_progress=show_progress,
        )
    except BaseException:
        cast.remove_npc(profile.id)
        raise
