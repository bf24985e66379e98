"""End to end: simulator -> producers -> Kafka -> consumer -> query service, every part a
real process started through the ``kubedelta`` CLI, queried over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from plumbing.kafka import KafkaConnection, admin_client

CLI = [sys.executable, "-c", "from kubedelta.cli import main; main()"]
ADMIN = "e2e-admin-token-01"
C1_ONLY = "e2e-c1-only-token1"


@dataclass
class Pipeline:
    sim_url: str
    query_url: str
    prefix: str
    logs: Path

    async def sim(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.sim_url + path, json=body) as response,
        ):
            assert response.status < 300, await response.text()
            return await response.json()

    async def query(self, path: str, token: str = ADMIN) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
            session.get(self.query_url + path) as response,
        ):
            body = await response.read()
            return response.status, orjson.loads(body) if body else None


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [*CLI, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _wait_line(process: subprocess.Popen[bytes], log: Path, pattern: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if m := re.search(pattern, log.read_text(errors="replace")):
            return m.group(1)
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"no /{pattern}/ in {log}:\n{log.read_text(errors='replace')[-3000:]}")


async def _wait_for_topics(bootstrap: str, topics: list[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        admin = admin_client(KafkaConnection(bootstrap_servers=bootstrap))
        await admin.start()
        try:
            if set(topics) <= set(await admin.list_topics()):
                return
        finally:
            await admin.close()
        assert time.monotonic() < deadline, f"topics {topics} not created"
        await asyncio.sleep(0.5)


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Pipeline]:
    prefix = f"e2eq{uuid.uuid4().hex[:8]}.cluster"
    store = tmp_path / "store"
    tokens = tmp_path / "tokens.json"
    tokens.write_bytes(
        orjson.dumps(
            {
                "tokens": {
                    ADMIN: {"clusters": ["*"], "namespaces": ["*"]},
                    C1_ONLY: {"clusters": ["c1"], "namespaces": ["*"]},
                }
            }
        )
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sim_log = tmp_path / "sim.log"
        procs.append(
            _start(["simulate", "--clusters", "2", "--objects", "60", "--port", "0"], sim_log)
        )
        sim_url = _wait_line(procs[-1], sim_log, r"base URL: (\S+)")
        procs.append(
            _start(
                [
                    "produce",
                    "--clusters",
                    "c1,c2",
                    "--api-url-template",
                    sim_url + "/clusters/{cluster}",
                    "--bootstrap",
                    kafka_bootstrap,
                    "--topic-prefix",
                    prefix,
                    "--health-port",
                    "0",
                ],
                tmp_path / "produce.log",
            )
        )
        # Started once the producers created the topics: it then finds them at once.
        asyncio.run(_wait_for_topics(kafka_bootstrap, [f"{prefix}.c1", f"{prefix}.c2"]))
        procs.append(
            _start(
                [
                    "consume",
                    "--bootstrap",
                    kafka_bootstrap,
                    "--topic-prefix",
                    prefix,
                    "--data-dir",
                    str(store),
                ],
                tmp_path / "consume.log",
            )
        )
        query_log = tmp_path / "query.log"
        procs.append(
            _start(
                [
                    "serve",
                    "--data-dir",
                    str(store),
                    "--port",
                    "0",
                    "--tokens",
                    str(tokens),
                    "--topic-prefix",
                    prefix,
                ],
                query_log,
            )
        )
        query_url = _wait_line(procs[-1], query_log, r"query: (http://\S+)")
        yield Pipeline(sim_url, query_url, prefix, tmp_path)
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


async def eventually(check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def _sse(
    url: str, token: str, seconds: float
) -> AsyncIterator[dict[str, Any]]:  # pragma: no cover - helper
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
        session.get(url, timeout=aiohttp.ClientTimeout(total=seconds + 5)) as response,
    ):
        assert response.status == 200
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                data = [line[6:] for line in frame.split(b"\n") if line.startswith(b"data: ")]
                if data:
                    yield orjson.loads(b"\n".join(data))


@pytest.mark.kafka
async def test_simulator_change_visible_through_api_with_scopes(pipeline: Pipeline) -> None:
    async def synced() -> bool:
        status, body = await pipeline.query("/api/v1/clusters")
        clusters = {c["cluster"]: c for c in body["clusters"]} if status == 200 else {}
        return all(
            c in clusters and clusters[c]["syncState"] == "synced" and clusters[c]["objectCount"]
            for c in ("c1", "c2")
        )

    await eventually(synced, 90)
    feed_url = pipeline.query_url + "/api/v1/watch?kind=ConfigMap&timeoutSeconds=25"
    admin_events: list[dict[str, Any]] = []
    scoped_events: list[dict[str, Any]] = []

    async def collect(token: str, into: list[dict[str, Any]]) -> None:
        async for event in _sse(feed_url, token, 25):
            into.append(event)
            if any(e["type"] == "DELETE" for e in into if e["cluster"] == "c1"):
                return

    feeds = [
        asyncio.create_task(collect(ADMIN, admin_events)),
        asyncio.create_task(collect(C1_ONLY, scoped_events)),
    ]
    await asyncio.sleep(1.0)
    for cluster in ("c1", "c2"):
        await pipeline.sim(
            "POST",
            f"/clusters/{cluster}/api/v1/namespaces/default/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "e2e-probe", "labels": {"probe": "one"}},
                "data": {"k": "v"},
            },
        )
    path = "/api/v1/clusters/{c}/objects/core/v1/ConfigMap/default/e2e-probe"

    async def visible() -> Any:
        status, body = await pipeline.query(path.format(c="c1"))
        return body if status == 200 else None

    created = await eventually(visible)
    assert created["metadata"]["labels"] == {"probe": "one"}

    current = await pipeline.sim(
        "GET", "/clusters/c1/api/v1/namespaces/default/configmaps/e2e-probe"
    )
    current["metadata"]["labels"] = {"probe": "two"}
    await pipeline.sim(
        "PUT", "/clusters/c1/api/v1/namespaces/default/configmaps/e2e-probe", current
    )

    async def updated() -> bool:
        status, body = await pipeline.query(
            "/api/v1/objects?kind=ConfigMap&labelSelector=probe%3Dtwo"
        )
        return status == 200 and [i["cluster"] for i in body["items"]] == ["c1"]

    await eventually(updated)
    # Scope: the c1-only token sees c1's probe, not c2's, in GET, search, counts and status.
    status, _ = await pipeline.query(path.format(c="c2"), C1_ONLY)
    assert status == 404
    status, _ = await pipeline.query(path.format(c="c2"))
    assert status == 200
    _, found = await pipeline.query("/api/v1/objects?kind=ConfigMap&namePrefix=e2e-", C1_ONLY)
    assert [i["cluster"] for i in found["items"]] == ["c1"]
    _, count = await pipeline.query(
        "/api/v1/objects?kind=ConfigMap&namePrefix=e2e-&count=true", C1_ONLY
    )
    assert count == {"count": 1}
    _, clusters = await pipeline.query("/api/v1/clusters", C1_ONLY)
    assert [c["cluster"] for c in clusters["clusters"]] == ["c1"]

    await pipeline.sim("DELETE", "/clusters/c1/api/v1/namespaces/default/configmaps/e2e-probe")

    async def gone() -> bool:
        status, _ = await pipeline.query(path.format(c="c1"))
        return status == 404

    await eventually(gone)
    await asyncio.wait_for(asyncio.gather(*feeds), 30)
    probe = [(e["cluster"], e["type"]) for e in admin_events if e["name"] == "e2e-probe"]
    assert ("c1", "UPSERT") in probe and ("c2", "UPSERT") in probe and ("c1", "DELETE") in probe
    scoped = {e["cluster"] for e in scoped_events}
    assert scoped == {"c1"}, scoped  # the feed never shows c2 to the c1-only token
