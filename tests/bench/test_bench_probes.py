"""Probes are sent on their schedule (an open loop), not after the previous answer."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping

from bench.errors import BenchError
from bench.phases import Probe, send_probes


class SlowTarget:
    """Answers each create after ``answer_s``; records when each request arrived."""

    def __init__(
        self, answer_s: float, failing: frozenset[str] = frozenset(), expected: int = 0
    ) -> None:
        self.answer_s = answer_s
        self.failing = failing
        self.expected = expected
        self.all_arrived = asyncio.Event()  #: set once ``expected`` requests arrived
        self.arrived: dict[str, float] = {}
        self.in_flight = 0
        self.most_in_flight = 0

    async def create_config_map(
        self, cluster: str, namespace: str, name: str, labels: Mapping[str, str]
    ) -> tuple[float, str]:
        sent = time.time()
        self.arrived[name] = time.monotonic()
        if len(self.arrived) >= self.expected:
            self.all_arrived.set()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.answer_s)
        finally:
            self.in_flight -= 1
        if name in self.failing:
            raise BenchError(f"refused {name}")
        return sent, "1"


async def test_a_slow_answer_does_not_delay_the_next_probes() -> None:
    # 20 probes over 1 s, each answered after 0.5 s: sent one after the other that
    # would take 10 s; on schedule it takes ~1.5 s with several in flight.
    target = SlowTarget(answer_s=0.5)
    probes: list[Probe] = []
    began = time.monotonic()
    await send_probes(target, ["c1", "c2"], 20, 1.0, "p-", random.Random(1), probes)
    took = time.monotonic() - began

    assert took < 3.0
    assert len(probes) == 20
    assert {p.name for p in probes} == {f"p-{i}" for i in range(20)}
    assert target.most_in_flight >= 5
    # Probe i is due within slot i of the 1 s span (spacing 0.05 s, jittered inside it).
    for i in range(20):
        offset = target.arrived[f"p-{i}"] - began
        assert 0.05 * i - 0.01 <= offset <= 0.05 * (i + 1) + 0.25
    for probe in probes:
        assert probe.answered_at - probe.sent_at >= 0.45


async def test_failed_creates_are_left_out_and_the_rest_kept() -> None:
    target = SlowTarget(answer_s=0.01, failing=frozenset({"p-1", "p-3"}))
    probes: list[Probe] = []
    await send_probes(target, ["c1"], 5, 0.1, "p-", random.Random(2), probes)

    assert sorted(p.name for p in probes) == ["p-0", "p-2", "p-4"]
    assert all(p.cluster == "c1" for p in probes)


async def test_cancelling_the_prober_cancels_the_creates_in_flight() -> None:
    target = SlowTarget(answer_s=30.0, expected=3)
    probes: list[Probe] = []
    prober = asyncio.create_task(
        send_probes(target, ["c1"], 3, 0.05, "p-", random.Random(3), probes)
    )
    await asyncio.wait_for(target.all_arrived.wait(), 5.0)
    prober.cancel()
    await asyncio.gather(prober, return_exceptions=True)
    await asyncio.sleep(0)

    assert target.in_flight == 0
    assert probes == []
