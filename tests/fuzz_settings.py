"""Hypothesis settings shared by the fuzzers: derandomized in CI (the same examples every
run); NPC_FUZZ_PROFILE=npc-fuzz-explore NPC_FUZZ_SCALE=50 explores new ones."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "npc-fuzz-ci", derandomize=True, database=None, deadline=None, suppress_health_check=_HEALTH
)
settings.register_profile("npc-fuzz-explore", deadline=None, suppress_health_check=_HEALTH)
PROFILE = settings.get_profile(os.environ.get("NPC_FUZZ_PROFILE", "npc-fuzz-ci"))
SCALE = int(os.environ.get("NPC_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    return settings(PROFILE, max_examples=examples * SCALE)
