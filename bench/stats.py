"""Pure arithmetic of the scenarios: percentiles, state comparison, rates over a time
series. No I/O, so it is tested on its own."""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks (numpy's
    default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


@dataclass
class Differences:
    """How one state differs from the expected one, object by object."""

    missing: int = 0  #: expected but absent
    extra: int = 0  #: present but not expected
    stale: int = 0  #: present with another version
    examples: list[str] = field(default_factory=list)  #: a few, for the log

    @property
    def total(self) -> int:
        return self.missing + self.extra + self.stale


def compare_states(
    expected: Mapping[K, str], actual: Mapping[K, str], max_examples: int = 10
) -> Differences:
    """Compare two identity -> version maps."""
    diff = Differences()

    def note(text: str) -> None:
        if len(diff.examples) < max_examples:
            diff.examples.append(text)

    for key, version in expected.items():
        got = actual.get(key)
        if got is None:
            diff.missing += 1
            note(f"missing {key}")
        elif got != version:
            diff.stale += 1
            note(f"stale {key}: {got} != {version}")
    for key in actual.keys() - expected.keys():
        diff.extra += 1
        note(f"extra {key}")
    return diff


def rates(samples: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Per-interval rates of a cumulative counter sampled as (time, value): one
    (interval midpoint, increase per second) per pair of neighbours."""
    out = []
    for (t0, v0), (t1, v1) in itertools.pairwise(samples):
        if t1 > t0:
            out.append(((t0 + t1) / 2, (v1 - v0) / (t1 - t0)))
    return out


def per_hour(total: float, window_s: float) -> float:
    """A total over a measured window, extrapolated to one hour."""
    return total * 3600.0 / window_s if window_s > 0 else math.nan


def without_nan(
    metrics: Mapping[str, float | int | bool],
) -> tuple[dict[str, float | int | bool], list[str]]:
    """The metrics that have a value, and the names of those that do not (NaN: e.g. a
    latency percentile with no samples). JSON has no NaN, so these are left out."""
    kept = {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))}
    return kept, [k for k in metrics if k not in kept]
