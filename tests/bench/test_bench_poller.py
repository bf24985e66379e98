"""The Clouddriver-style poller's accounting against a tiny in-process simulator: every
page is one API call, bytes are exactly what was served, probes are seen once listed."""

from __future__ import annotations

import math

import aiohttp

from bench.poller import Poller, PollerConfig
from bench.simclient import SimClient
from simulator import Simulator, SimulatorConfig

PAGE = 7


async def _served_bytes(base_url: str, path: str) -> tuple[int, int]:
    """(pages, bytes) of a paginated LIST, fetched independently of the poller."""
    pages = 0
    total = 0
    token = ""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        while True:
            url = f"{base_url}{path}?limit={PAGE}" + (f"&continue={token}" if token else "")
            async with session.get(url) as response:
                body = await response.read()
                document = await response.json(content_type=None)
            pages += 1
            total += len(body)
            token = document["metadata"].get("continue") or ""
            if not token:
                return pages, total


async def test_one_cycle_counts_every_page_and_byte() -> None:
    sim = Simulator(SimulatorConfig(clusters=("p1", "p2"), objects_per_cluster=60, seed=3))
    async with sim.serve() as base_url, SimClient(base_url) as client:
        poller = Poller(client, PollerConfig(clusters=("p1", "p2"), page_size=PAGE))
        await poller.discover()
        kinds = poller.kinds("p1")
        assert {k.kind for k in kinds} >= {"Pod", "Deployment", "ConfigMap", "Widget"}

        expected_calls = 0
        expected_bytes = 0
        for cluster in ("p1", "p2"):
            for kind in poller.kinds(cluster):
                pages, size = await _served_bytes(f"{base_url}/clusters/{cluster}", kind.list_path)
                expected_calls += pages
                expected_bytes += size
        objects = sum(c.count() for c in sim.clusters.values())

        await poller.cycle()
        acc = poller.accounting
        assert acc.cycles == 1
        assert acc.api_calls == expected_calls
        assert acc.body_bytes == expected_bytes
        assert acc.objects_listed == objects
        # Every kind of every cluster is listed: at least one call each, and the
        # pages add up to ceil(count / page) for non-empty kinds.
        assert acc.api_calls >= sum(len(poller.kinds(c)) for c in ("p1", "p2"))
        assert acc.api_calls >= math.ceil(objects / PAGE)
        # Extrapolation: one cycle every 30 s is 120 per hour.
        assert acc.per_hour(acc.api_calls, 30.0) == acc.api_calls * 120


async def test_probe_is_seen_by_the_first_list_after_it() -> None:
    sim = Simulator(SimulatorConfig(clusters=("p1",), objects_per_cluster=30, seed=4))
    async with sim.serve() as base_url, SimClient(base_url) as client:
        poller = Poller(client, PollerConfig(clusters=("p1",), probe_prefix="kd-probe-"))
        await poller.run(cycles=1)
        assert poller.accounting.probes_seen == {}
        sent_at, _rv = await client.create_config_map("p1", "default", "kd-probe-0", {})
        await poller.run(cycles=1)
        seen_at = poller.accounting.probes_seen[("p1", "kd-probe-0")]
        assert seen_at >= sent_at
        staleness, unseen = poller.accounting.staleness([("p1", "kd-probe-0", sent_at)])
        assert unseen == 0
        assert staleness == [seen_at - sent_at]
