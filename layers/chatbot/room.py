"""How much of a model call fits in the quotas: pure arithmetic over what each tier has left, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TIERS = ("user", "organization", "global")
"""Tier names, in the order a refusal names them when several are equally spent."""

MIN_USEFUL_OUTPUT = 256
"""A call is refused rather than started when fewer output tokens than this would fit."""


@dataclass(frozen=True)
class Room:
    """What each tier has left today, given its limit and what it has counted (settled usage plus
    reservations in flight, plus any settle about to be applied)."""

    limits: Mapping[str, int]
    used: Mapping[str, int]

    @classmethod
    def empty(cls, limits: Mapping[str, int]) -> Room:
        """The room of a day nothing has been counted on yet: the most that could ever fit."""
        return cls(limits, dict.fromkeys(limits, 0))

    def left(self, tier: str) -> int:
        """Tokens `tier` can still take (negative when it is over, which a settle can cause)."""
        return self.limits[tier] - self.used[tier]

    @property
    def tightest(self) -> str:
        """The tier with the least left (the first in `TIERS` on a tie)."""
        return min(TIERS, key=self.left)

    def too_small_for(self, estimated_input: int, max_tokens: int) -> str | None:
        """The first tier whose whole limit cannot hold `estimated_input` and a useful answer, or None."""
        need = estimated_input + min(MIN_USEFUL_OUTPUT, max_tokens)
        return next((tier for tier in TIERS if self.left(tier) < need), None)

    def output_that_fits(self, estimated_input: int, max_tokens: int) -> int | None:
        """The largest `max_tokens` (at most the one asked) whose reservation of `estimated_input` plus that
        output fits on every tier, or None when less than a useful answer fits."""
        fits = min(max_tokens, self.left(self.tightest) - estimated_input)
        return fits if fits >= min(MIN_USEFUL_OUTPUT, max_tokens) else None
