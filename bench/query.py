"""`kubedelta bench query`: the query API's latency and throughput over a big view
while the consumer applies a steady stream of deltas.

1. **fill**: N Pods (``bench.codec.make_pod``, ~2 KB) over a few clusters are written
   straight into a fresh store through the store's own apply path (encoded deltas,
   consumer-sized batches), which is much faster than sending them through Kafka;
2. **live load**: ``kubedelta consume`` then owns the store and applies ~5,000
   deltas/s that a separate process sends to Kafka (updates of Pods of two other
   clusters), while ``kubedelta serve`` reads the store as a RocksDB secondary;
3. **measure**, against uvicorn over real HTTP, from processes other than the server:
   * point GETs of random objects from ``wrk`` (or an aiohttp worker process when wrk
     is not installed), paced to about ``--get-rate`` requests/s: ``get_p99_ms``,
     ``get_rps``; then unpaced: ``get_max_rps``;
   * a LIST of 10,000 objects (one page): ``list10k_ms`` (median);
   * a cross-cluster label query answered from the label index
     (``kind=Pod&labelSelector=app=X,tier=Y&limit=100``): ``label_query_p99_ms``;
   * the change feed: the time from a change becoming visible in the store (a
     secondary this process polls every 5 ms) to its SSE event reaching the client:
     ``feed_p99_ms``; and from the live-load process sending it: ``feed_e2e_p99_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import re
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import click
import orjson
import psutil

from bench.codec import make_pod, pod_delta
from bench.procs import Components
from bench.report import Machine, Progress, Report, emit, json_option
from bench.stats import percentile
from deltas import BodyEncoding, Delta, encode, partition_for, topic_for
from plumbing import broker
from plumbing.kafka import KafkaConnection, TopicSpec, ensure_topics
from store import SourceRecord, StoreOptions, View, ViewReader

PARTITIONS = 3
APPS = ("checkout", "cart", "search", "payments", "catalog", "frontend")
TIERS = ("web", "api", "worker")


@dataclass(frozen=True, slots=True)
class QueryBenchConfig:
    resources: int = 100_000  #: Pods in the store before the measurements
    clusters: int = 4  #: clusters the filled Pods are spread over
    batch: int = 2_000  #: records per store commit while filling
    live_rate: float = 5_000.0  #: deltas/s the live-load process sends (the consumer applies)
    live_objects: int = 20_000  #: distinct Pods the live load keeps updating
    get_rate: float = 2_000.0  #: paced GET load, requests/s
    get_seconds: float = 10.0  #: length of each GET run
    connections: int = 8  #: concurrent HTTP connections of the GET load
    label_queries: int = 300  #: sequential label-index queries
    list_repeats: int = 5  #: LISTs of 10,000 objects (median reported)
    feed_seconds: float = 10.0  #: how long the feed latency is sampled
    loadgen: str = "auto"  #: "wrk", "aiohttp" or "auto" (wrk when installed)
    work_dir: Path | None = None  #: store, logs; a temp dir (deleted after) when None


# -- fill ----------------------------------------------------------------------------------


def _pod_records(
    config: QueryBenchConfig, prefix: str, sample_every: int
) -> Iterator[tuple[list[SourceRecord], list[tuple[str, str, str]]]]:
    """Batches of encoded Pod deltas, with a sample of their (cluster, namespace, name)."""
    rng = random.Random(1)
    offsets: dict[tuple[str, int], int] = {}
    now_ms = int(time.time() * 1000) - 60_000
    batch: list[SourceRecord] = []
    sample: list[tuple[str, str, str]] = []
    for i in range(config.resources):
        cluster = f"bq-{i % config.clusters}"
        pod = make_pod(rng, i)
        pod["metadata"]["name"] += f"-{i}"  # unique even if the random parts collide
        delta = replace(pod_delta(pod, BodyEncoding.JSON, i + 1), cluster=cluster)
        delta = replace(delta, event_time_ms=now_ms)
        key = delta.kafka_key()
        tp = (topic_for(cluster, prefix), partition_for(key, PARTITIONS))
        offset = offsets.get(tp, 0)
        offsets[tp] = offset + 1
        batch.append(SourceRecord(tp[0], tp[1], offset, key, encode(delta), now_ms))
        if i % sample_every == 0:
            sample.append((cluster, pod["metadata"]["namespace"], pod["metadata"]["name"]))
        if len(batch) == config.batch:
            yield batch, sample
            batch, sample = [], []
    if batch:
        yield batch, sample


def fill(
    config: QueryBenchConfig, store: Path, prefix: str
) -> tuple[list[tuple[str, str, str]], float]:
    """Write the Pods into a fresh store, then compact it fully (a store that has run for
    a while is mostly in its bottom level: zstd with a dictionary, large index and
    filter blocks; reads of a fresh fill would not see that path). Returns sampled keys
    and the fill rate (records/s, the compaction not included)."""
    sample_every = max(config.resources // 20_000, 1)
    keys: list[tuple[str, str, str]] = []
    started = time.monotonic()
    with (
        View.open(store, StoreOptions(topic_prefix=prefix)) as view,
        Progress(config.resources // config.batch + 1, "fill") as bar,
    ):
        for records, sample in _pod_records(config, prefix, sample_every):
            result = view.apply(records)
            if result.rejected:
                raise click.ClickException(f"fill: the store rejected {result.rejected} records")
            keys.extend(sample)
            bar.advance()
        view.flush()
        rate = config.resources / (time.monotonic() - started)
        view.compact()
    return keys, rate


# -- live load (its own process) -------------------------------------------------------


def _live_load(bootstrap: str, prefix: str, rate: float, objects: int, stop: Any) -> None:
    """Child process: send ``rate`` deltas/s until ``stop`` (a multiprocessing Event) is set."""
    asyncio.run(_live_load_async(bootstrap, prefix, rate, objects, stop))


LIVE_CLUSTERS = ("live-0", "live-1")


async def _live_load_async(
    bootstrap: str, prefix: str, rate: float, objects: int, stop: Any
) -> None:
    from aiokafka import AIOKafkaProducer  # only this child process needs it

    rng = random.Random(2)
    session = f"bench-query-live-{uuid.uuid4().hex[:8]}"  # seq restarts at 1 each run
    conn = KafkaConnection(bootstrap_servers=bootstrap, client_id="kubedelta-bench-query")
    # Bodies are serialized once; each send re-encodes only the header (new
    # resourceVersion, seq, event time), so the generator stays cheap next to the
    # consumer and the server it loads.
    templates: list[tuple[str, int, bytes, Delta]] = []
    for i in range(objects):
        pod = make_pod(rng, i)
        pod["metadata"]["name"] += f"-live{i}"
        cluster = LIVE_CLUSTERS[i % len(LIVE_CLUSTERS)]
        delta = replace(pod_delta(pod, BodyEncoding.JSON, 1), cluster=cluster, session=session)
        key = delta.kafka_key()
        templates.append((topic_for(cluster, prefix), partition_for(key, PARTITIONS), key, delta))
    producer = AIOKafkaProducer(**conn.client_kwargs(), linger_ms=5, acks=1)
    await producer.start()
    try:
        seq = 0
        tick = 0.02
        per_tick = max(int(rate * tick), 1)
        next_tick = time.monotonic()
        while not stop.is_set():
            batches: dict[tuple[str, int], Any] = {}
            now_ms = int(time.time() * 1000)
            for _ in range(per_tick):
                seq += 1
                topic, partition, key, template = templates[seq % len(templates)]
                delta = replace(template, resource_version=str(seq), seq=seq, event_time_ms=now_ms)
                batch = batches.get((topic, partition))
                if batch is None:
                    batch = batches[(topic, partition)] = producer.create_batch()
                if batch.append(key=key, value=encode(delta), timestamp=None) is None:
                    await producer.send_batch(batch, topic, partition=partition)
                    batch = batches[(topic, partition)] = producer.create_batch()
                    batch.append(key=key, value=encode(delta), timestamp=None)
            for (topic, partition), batch in batches.items():
                await producer.send_batch(batch, topic, partition=partition)
            next_tick += tick
            await asyncio.sleep(max(next_tick - time.monotonic(), 0))
        await producer.flush()
    finally:
        await producer.stop()


# -- GET load ----------------------------------------------------------------------------

_WRK_SCRIPT = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
wrk.headers["Authorization"] = "Bearer %(token)s"
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
%(delay)s
"""


@dataclass(frozen=True, slots=True)
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _wrk_ms(text: str) -> float:
    value, unit = float(text[:-2] if text.endswith(("us", "ms")) else text[:-1]), text[-2:]
    if unit == "us":
        return value / 1000
    if unit == "ms":
        return value
    return value * 1000  # "s"


def parse_wrk(output: str) -> LoadResult:
    """Requests/s, p50/p99 and non-2xx count from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(g) for g in socket_errors.groups())
    return LoadResult(
        rps=rps,
        p50_ms=_wrk_ms(p50.group(1)) if p50 else float("nan"),
        p99_ms=_wrk_ms(p99.group(1)) if p99 else float("nan"),
        errors=failed,
    )


def _run_wrk(
    url: str, paths_file: Path, token: str, config: QueryBenchConfig, delay_ms: float, work: Path
) -> LoadResult:
    script = work / f"get-{delay_ms:g}.lua"
    delay = f"delay = function() return {delay_ms:g} end" if delay_ms > 0 else ""
    script.write_text(
        _WRK_SCRIPT % {"paths": paths_file, "token": token, "seed": 7, "delay": delay}
    )
    import subprocess

    completed = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{config.connections}",
            f"-d{config.get_seconds:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=config.get_seconds + 60,
    )
    return parse_wrk(completed.stdout)


def _aiohttp_worker(
    url: str,
    paths: list[str],
    token: str,
    connections: int,
    seconds: float,
    delay_ms: float,
    out: Any,
) -> None:
    out.put(asyncio.run(_aiohttp_load(url, paths, token, connections, seconds, delay_ms)))


async def _aiohttp_load(
    url: str, paths: list[str], token: str, connections: int, seconds: float, delay_ms: float
) -> tuple[float, list[float], int]:
    rng = random.Random(7)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(
        base_url=url, connector=connector, headers={"Authorization": f"Bearer {token}"}
    ) as session:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                path = paths[rng.randrange(len(paths))]
                started = time.perf_counter()
                async with session.get(path) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append((time.perf_counter() - started) * 1000)
                if delay_ms > 0:
                    await asyncio.sleep(delay_ms / 1000)

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - began
    return len(latencies) / elapsed, latencies, errors


def _run_aiohttp(
    url: str, paths: list[str], token: str, config: QueryBenchConfig, delay_ms: float
) -> LoadResult:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(
        target=_aiohttp_worker,
        args=(url, paths, token, config.connections, config.get_seconds, delay_ms, queue),
    )
    process.start()
    rps, latencies, errors = queue.get(timeout=config.get_seconds + 120)
    process.join(30)
    return LoadResult(rps, percentile(latencies, 50), percentile(latencies, 99), errors)


# -- the other measurements (this process, aiohttp) ----------------------------------------


async def _timed_get(session: aiohttp.ClientSession, path: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    async with session.get(path) as response:
        body = await response.read()
        if response.status != 200:
            raise click.ClickException(f"GET {path}: {response.status} {body[:300]!r}")
    return (time.perf_counter() - started) * 1000, body


async def _list_and_labels(
    url: str, token: str, config: QueryBenchConfig, cpu_s: Callable[[], float]
) -> dict[str, float]:
    rng = random.Random(3)
    async with aiohttp.ClientSession(
        base_url=url, headers={"Authorization": f"Bearer {token}"}
    ) as session:
        list_ms = []
        list_cpu = cpu_s()
        for _ in range(config.list_repeats):
            ms, body = await _timed_get(
                session, "/api/v1/clusters/bq-0/objects/core/v1/Pod?limit=10000"
            )
            items = orjson.loads(body)["items"]
            if len(items) != min(10_000, config.resources // config.clusters):
                raise click.ClickException(f"LIST returned {len(items)} items")
            list_ms.append(ms)
        list_cpu = cpu_s() - list_cpu
        label_ms = []
        hits = 0
        label_cpu = cpu_s()
        for _ in range(config.label_queries):
            selector = f"app={rng.choice(APPS)},tier={rng.choice(TIERS)}"
            ms, body = await _timed_get(
                session, f"/api/v1/objects?kind=Pod&labelSelector={selector}&limit=100"
            )
            hits += len(orjson.loads(body)["items"])
            label_ms.append(ms)
        label_cpu = cpu_s() - label_cpu
    return {
        "list10k_ms": percentile(list_ms, 50),
        "list10k_server_cpu_ms": list_cpu / config.list_repeats * 1000,
        "list10k_max_ms": max(list_ms),
        "label_query_p50_ms": percentile(label_ms, 50),
        "label_query_p99_ms": percentile(label_ms, 99),
        "label_query_server_cpu_ms": label_cpu / config.label_queries * 1000,
        "label_query_items_mean": hits / max(len(label_ms), 1),
    }


def _frame_times(frames: list[bytes]) -> Iterator[tuple[int, int]]:
    """(event id, eventTimeMs) of each change frame; comments and keepalives skipped."""
    for frame in frames:
        if not frame.startswith(b"id: "):
            continue
        head, _, rest = frame.partition(b"\n")
        data = rest.partition(b"data: ")[2]
        marker = data.find(b'"eventTimeMs":')
        if marker < 0:
            continue
        start = marker + len(b'"eventTimeMs":')
        end = data.find(b",", start)
        yield int(head[4:]), int(data[start:end])


def _store_poller(store: str, secondary: str, prefix: str, seconds: float, out: Any) -> None:
    """Child process: when does each change become visible in the store? Polls its own
    secondary every 5 ms and reports {position: wall time first seen}."""
    options = StoreOptions(topic_prefix=prefix, block_cache_bytes=512 * 1024 * 1024)
    reader = ViewReader.open(Path(store), Path(secondary), options)
    visible: dict[int, float] = {}
    try:
        reader.catch_up()
        _, position = reader.feed_bounds()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reader.catch_up()
            now = time.time()
            while True:
                changes = reader.changes_since(position, 10_000)
                if not changes:
                    break
                for change in changes:
                    visible[change.position] = now
                position = changes[-1].position
            time.sleep(0.005)
    finally:
        reader.close()
    out.put(visible)


async def _feed_latency(
    url: str, token: str, store: Path, work: Path, seconds: float, prefix: str
) -> dict[str, float]:
    """SSE arrival minus the moment a separate process's secondary first saw the change."""
    arrived: dict[int, tuple[float, int]] = {}
    received = [0]
    connected = asyncio.Event()

    async def read_feed() -> None:
        pending = b""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(
                f"{url}/api/v1/watch?cluster={','.join(LIVE_CLUSTERS)}&kind=Pod",
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            if response.status != 200:
                raise click.ClickException(f"watch: {response.status} {await response.text()}")
            connected.set()
            async for chunk in response.content.iter_any():
                now = time.time()
                received[0] += len(chunk)
                # The server sends whole batches of frames per chunk: split once per
                # chunk (a line-by-line parser that re-slices its buffer is quadratic).
                frames = (pending + chunk).split(b"\n\n")
                pending = frames.pop()
                for event_id, sent_ms in _frame_times(frames):
                    arrived[event_id] = (now, sent_ms)

    feed = asyncio.create_task(read_feed())
    async with asyncio.timeout(60):
        await connected.wait()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    poller = ctx.Process(
        target=_store_poller,
        args=(str(store), str(work / "bench-secondary"), prefix, seconds, queue),
        daemon=True,
    )
    poller.start()
    visible: dict[int, float] = await asyncio.to_thread(queue.get, True, seconds + 120)
    await asyncio.sleep(1.0)  # the last changes the poller saw reach the feed too
    feed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feed
    poller.join(10)
    after_apply = [(t - visible[p]) * 1000 for p, (t, _) in arrived.items() if p in visible]
    e2e = [t * 1000 - sent for p, (t, sent) in arrived.items() if p in visible]
    return {
        "feed_p50_ms": percentile(after_apply, 50),
        "feed_p99_ms": percentile(after_apply, 99),
        "feed_e2e_p99_ms": percentile(e2e, 99),
        "feed_events_per_s": len(after_apply) / seconds,
        "feed_events_received": len(arrived),
        "feed_bytes_received": received[0],
        "feed_store_changes_seen": len(visible),
        # What the consumer applied meanwhile (the background write load actually reached).
        "live_applied_per_s": len(visible) / seconds,
    }


# -- the scenario ------------------------------------------------------------------------


async def _measure(
    config: QueryBenchConfig,
    components: Components,
    bootstrap: str,
    prefix: str,
    store: Path,
    work: Path,
    keys: list[tuple[str, str, str]],
) -> dict[str, float]:
    token = secrets.token_urlsafe(24)
    tokens = work / "tokens.json"
    tokens.write_bytes(orjson.dumps({"tokens": {token: {"clusters": ["*"], "namespaces": ["*"]}}}))
    # The live topics exist before the consumer starts, so its pattern subscription
    # sees them at once.
    await ensure_topics(
        KafkaConnection(bootstrap_servers=bootstrap),
        [TopicSpec(topic_for(c, prefix), PARTITIONS) for c in LIVE_CLUSTERS],
    )
    consumer = components.start(
        "consumer",
        ["consume", "--bootstrap", bootstrap, "--topic-prefix", prefix, "--data-dir", str(store)],
    )
    del consumer
    query = components.start(
        "query",
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
    )
    url = (await query.wait_for_line(r"query: (http://\S+)", 120)).group(1)
    ctx = multiprocessing.get_context("spawn")
    stop_live = ctx.Event()
    live = ctx.Process(
        target=_live_load,
        args=(bootstrap, prefix, config.live_rate, config.live_objects, stop_live),
        daemon=True,
    )
    live.start()
    try:
        await asyncio.sleep(5)  # let the live load and the consumer reach a steady state
        components.check_alive()
        paths = [f"/api/v1/clusters/{c}/objects/core/v1/Pod/{ns}/{n}" for c, ns, n in keys]
        paths_file = work / "get-paths.txt"
        paths_file.write_text("\n".join(paths) + "\n")
        use_wrk = config.loadgen == "wrk" or (
            config.loadgen == "auto" and shutil.which("wrk") is not None
        )
        # Paced: each connection waits so that all together send about get_rate/s.
        delay_ms = max(config.connections / config.get_rate * 1000 - 0.5, 0.0)

        def run(delay: float) -> LoadResult:
            if use_wrk:
                return _run_wrk(url, paths_file, token, config, delay, work)
            return _run_aiohttp(url, paths, token, config, delay)

        server = psutil.Process(query.pid)

        def cpu_s() -> float:
            times = server.cpu_times()
            return float(times.user + times.system)

        paced = await asyncio.to_thread(run, delay_ms)
        components.check_alive()
        cpu_before = cpu_s()
        unpaced = await asyncio.to_thread(run, 0.0)
        cpu_used = cpu_s() - cpu_before
        components.check_alive()
        requests = max(unpaced.rps * config.get_seconds, 1.0)
        metrics: dict[str, float] = {
            # Server CPU per GET (includes its catch-ups under the live load): the
            # load-independent cost; 1e6 / this = GETs/s one core could serve.
            "get_server_cpu_us": cpu_used / requests * 1e6,
            "get_rps": paced.rps,
            "get_p50_ms": paced.p50_ms,
            "get_p99_ms": paced.p99_ms,
            "get_max_rps": unpaced.rps,
            "get_max_p99_ms": unpaced.p99_ms,
            "get_errors": paced.errors + unpaced.errors,
        }
        metrics.update(await _list_and_labels(url, token, config, cpu_s))
        components.check_alive()
        metrics.update(await _feed_latency(url, token, store, work, config.feed_seconds, prefix))
        components.check_alive()
        return metrics
    finally:
        stop_live.set()
        live.join(15)
        if live.is_alive():
            live.terminate()
            live.join(5)


def _reusable(
    filled: Path, config: QueryBenchConfig
) -> tuple[str, list[tuple[str, str, str]]] | None:
    """(topic prefix, sampled keys) of a store an earlier run filled the same way."""
    try:
        info = orjson.loads(filled.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if (info.get("resources"), info.get("clusters")) != (config.resources, config.clusters):
        return None
    return str(info["prefix"]), [(c, ns, n) for c, ns, n in info["keys"]]


@click.command("query")
@click.option("--resources", type=click.IntRange(min=10_000), default=100_000, show_default=True)
@click.option("--clusters", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--live-rate",
    type=click.FloatRange(min=0),
    default=5_000.0,
    show_default=True,
    help="Deltas/s the consumer applies during the measurements.",
)
@click.option("--get-rate", type=click.FloatRange(min=1), default=2_000.0, show_default=True)
@click.option("--get-seconds", type=click.FloatRange(min=1), default=10.0, show_default=True)
@click.option("--connections", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option("--feed-seconds", type=click.FloatRange(min=1), default=10.0, show_default=True)
@click.option(
    "--loadgen", type=click.Choice(["auto", "wrk", "aiohttp"]), default="auto", show_default=True
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the store and logs here (default: a temp dir, deleted after).",
)
@click.option(
    "--reuse",
    is_flag=True,
    default=False,
    help="Reuse the store a previous run filled in --work-dir (same --resources/--clusters).",
)
@json_option
def command(
    resources: int,
    clusters: int,
    live_rate: float,
    get_rate: float,
    get_seconds: float,
    connections: int,
    feed_seconds: float,
    loadgen: str,
    work_dir: Path | None,
    reuse: bool,
    json_path: Path | None,
) -> None:
    """Query API latency/throughput over N objects while the consumer applies deltas."""
    config = QueryBenchConfig(
        resources=resources,
        clusters=max(1, min(clusters, resources // 10_000)),
        live_rate=live_rate,
        get_rate=get_rate,
        get_seconds=get_seconds,
        connections=connections,
        feed_seconds=feed_seconds,
        loadgen=loadgen,
        work_dir=work_dir,
    )
    work = work_dir or Path(tempfile.mkdtemp(prefix="kubedelta-bench-query-"))
    work.mkdir(parents=True, exist_ok=True)
    store = work / "store"
    filled = work / "filled.json"
    components = Components(work / "logs")
    try:
        reused = _reusable(filled, config) if reuse else None
        if reused is not None:
            prefix, keys = reused
            fill_rate = float("nan")
            click.echo(f"reusing the filled store in {store}", err=True)
        else:
            shutil.rmtree(store, ignore_errors=True)
            filled.unlink(missing_ok=True)
            prefix = f"kdbenchq{uuid.uuid4().hex[:8]}.cluster"
            click.echo(f"filling the store with {resources:,} Pods ...", err=True)
            keys, fill_rate = fill(config, store, prefix)
            filled.write_bytes(
                orjson.dumps(
                    {
                        "prefix": prefix,
                        "resources": config.resources,
                        "clusters": config.clusters,
                        "keys": keys,
                    }
                )
            )
        with broker.borrowed(broker.LocalBrokerConfig.from_env(os.environ)) as bootstrap:
            try:
                metrics = asyncio.run(
                    _measure(config, components, bootstrap, prefix, store, work, keys)
                )
            finally:
                components.stop_all()
        metrics = {
            "fill_records_per_s": fill_rate,
            **metrics,
            # Other work on the machine skews every latency here: say how busy it was.
            "load_avg_1m_end": os.getloadavg()[0],
        }
        params = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
        params["loadgen"] = (
            "wrk" if loadgen == "wrk" or (loadgen == "auto" and shutil.which("wrk")) else "aiohttp"
        )
        emit(Report("query", params, metrics, Machine.current()), json_path)
    finally:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
