"""Exponential backoff with full jitter, as data (client-go reflector defaults)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays grow initial * factor**attempt, capped, with jitter so clusters do not stampede."""

    initial_s: float = 0.8  #: first delay (client-go: 800 ms)
    cap_s: float = 30.0  #: never wait longer than this (client-go: 30 s)
    factor: float = 2.0  #: growth per consecutive failure
    jitter: float = 0.5  #: fraction of the delay drawn at random (0 = none, 1 = full)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        base = min(self.cap_s, self.initial_s * self.factor ** max(attempt, 0))
        r = (rng or random).random()
        return base * (1.0 - self.jitter) + base * self.jitter * r
