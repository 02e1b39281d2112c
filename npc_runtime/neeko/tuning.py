"""The two ways a cast learns: pre-tuning a new cast, and expanding an existing one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from ..base_model import load_base, resolve_dtype
from .cast import HOUSE, Cast, CastError
from .config import GateConfig, LoraConfig, TrainConfig
from .data import DataError, Sample, read_profiles, read_samples
from .profile import NpcProfile
from .train import Progress, TrainReport, selected, train_blocks


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
    house: bool = False,
) -> tuple[Cast, TrainReport]:
    """A new cast with one block per character of the data (or of `characters`), and,
    with `house`, a house block trained first on all of them (`Cast.add_house`)."""
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
    config = train or TrainConfig()
    torch.manual_seed(config.seed)  # block initialisation
    house_report = None
    if house:
        chosen_samples = {c: samples[c] for c in wanted}
        house_report = train_house(cast, chosen_samples, profiles, config, show_progress)
    embeddings = cast.encoder.encode([p.role_text() for p in chosen])
    for profile, emb in zip(chosen, embeddings):
        cast.add_block_npc(profile, emb)
    report = train_blocks(
        cast, {c: samples[c] for c in wanted}, profiles, config, show_progress=show_progress
    )
    return cast, report.after(house_report) if house_report else report


def train_house(
    cast: Cast,
    samples: Mapping[str, Sequence[Sample]],
    profiles: Mapping[str, NpcProfile],
    config: TrainConfig,
    show_progress: bool = True,
) -> TrainReport:
    """Add the house block to a new cast and train it on the samples every character's
    block will train on, the way one shared adapter trains (a whole batch an update)."""
    cast.add_house()
    rows = [s for c, own in samples.items() for s in selected(own, c, config)[0]]
    return train_blocks(
        cast,
        {HOUSE: rows},
        profiles,
        replace(config, block_batch_size=config.batch_size, max_samples_per_character=None),
        show_progress=show_progress,
    )


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
