"""``kubedelta produce`` as a process: multiplexed clusters, /readyz and /metrics, and
SIGTERM flushing to Kafka before exit."""

from __future__ import annotations

import asyncio
import copy
import os
import socket
import sys
import uuid

import aiohttp
import pytest
from producer_harness import end_offsets, latest_bodies, read_records

from simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.kafka


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get(url: str) -> tuple[int, str]:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.text()
    except aiohttp.ClientError:
        return 0, ""


async def test_cli_multiplexed_ready_metrics_and_sigterm_flush(kafka_bootstrap: str) -> None:
    sim = Simulator(SimulatorConfig(clusters=("c1", "c2"), objects_per_cluster=200, seed=11))
    prefix = f"test-cli-{uuid.uuid4().hex[:8]}"
    port = free_port()
    async with sim.serve() as base:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from kubedelta.cli import main; main()",
            "produce",
            "--clusters", "c1,c2",
            "--api-url-template", f"{base}/clusters/{{cluster}}",
            "--bootstrap", kafka_bootstrap,
            "--topic-prefix", prefix,
            "--include-kinds", "configmaps,deployments.apps",
            "--health-port", str(port),
            "--digest-interval-s", "3600",
            "--log-level", "WARNING",
        )  # fmt: skip
        try:
            ready = False
            for _ in range(600):
                status, _ = await get(f"http://127.0.0.1:{port}/readyz")
                if status == 200:
                    ready = True
                    break
                assert process.returncode is None, "the producer exited"
                await asyncio.sleep(0.1)
            assert ready
            status, metrics = await get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            assert 'kubedelta_producer_records_acked_total{cluster="c1"}' in metrics
            assert 'kubedelta_producer_records_acked_total{cluster="c2"}' in metrics
            assert (await get(f"http://127.0.0.1:{port}/healthz"))[0] == 200

            c2 = sim.cluster("c2")
            target = next(o for o in c2.objects() if o.get("kind") == "ConfigMap")
            changed = copy.deepcopy(target)
            changed["metadata"].pop("resourceVersion")
            changed["data"] = {"flushed": "before-exit"}
            c2.update(changed)

            async def observed() -> bool:
                _, text = await get(f"http://127.0.0.1:{port}/metrics")
                return (
                    'kubedelta_producer_events_observed_total{cluster="c2",event="MODIFIED",kind="configmaps"} 1.0'
                    in text
                )

            for _ in range(200):
                if await observed():
                    break
                await asyncio.sleep(0.05)
            process.terminate()
            assert await asyncio.wait_for(process.wait(), 60) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

        for cluster in ("c1", "c2"):
            assert sum((await end_offsets(kafka_bootstrap, f"{prefix}.{cluster}")).values()) > 0
        bodies = latest_bodies(await read_records(kafka_bootstrap, f"{prefix}.c2"))
        meta = target["metadata"]
        key = f"\x00ConfigMap\x00{meta['namespace']}\x00{meta['name']}".encode()
        assert b'"flushed":"before-exit"' in bodies[key]


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int | None, str]:
    """``kubedelta <args>`` in a child process: its exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from kubedelta.cli import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, err.decode()


async def test_cli_without_a_way_to_the_api_server_says_so_before_touching_kafka() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBERNETES_SERVICE_", "KUBEDELTA_"))
    }
    code, err = await run_cli(
        "produce",
        "--cluster",
        "nowhere",
        "--bootstrap",
        "127.0.0.1:1",  # nothing listens: the API configuration must fail first
        "--health-port",
        "0",
        env=env,
    )
    assert code == 1
    assert "no in-cluster ServiceAccount" in err
    assert "Traceback" not in err


async def test_cli_with_a_zstd_level_zstd_does_not_have_says_so() -> None:
    code, err = await run_cli(
        "produce",
        "--cluster",
        "c1",
        "--api-url",
        "http://127.0.0.1:1",
        "--bootstrap",
        "127.0.0.1:1",
        "--zstd-level",
        "40",
    )
    assert code == 1
    assert "zstd level must be in [-7, 22], got 40" in err
    assert "Traceback" not in err
