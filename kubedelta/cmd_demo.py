"""``kubedelta demo``: the whole pipeline on one machine, then example queries.

Starts (or reuses) the local Kafka broker, a simulator with a few clusters and some
churn, the producers (one per simulated cluster, multiplexed in one process), the
consumer and the query service, each as its own process group; writes a tokens
file; prints the URL and curl lines that work. Ctrl-C or SIGTERM (or
``--duration``) stops every process it started, and the broker too unless it was
already running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import click
import yaml

from deltas.keys import DEFAULT_TOPIC_PREFIX, topic_for
from plumbing import broker
from plumbing.kafka import KafkaConnection, admin_client

#: Seconds a component gets to exit after SIGTERM before its group gets SIGKILL.
STOP_GRACE_S = 10.0
#: How the demo runs the CLI in its children: the same interpreter and package.
_CLI = [sys.executable, "-c", "from kubedelta.cli import main; main()"]


class DemoError(click.ClickException):
    """A component failed to start or died."""


class _Stop(Exception):
    """Raised by the signal handler to unwind into the cleanup."""


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class ProcessGroups:
    """Children started in their own sessions, so each is stopped with its whole group."""

    log_dir: Path
    components: list[Component] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Component:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*_CLI, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        component = Component(name, process, log)
        self.components.append(component)
        return component

    def check_alive(self) -> None:
        for c in self.components:
            code = c.process.poll()
            if code is not None:
                raise DemoError(f"{c.name} exited with code {code}; its log:\n{_tail(c.log)}")

    def wait_line(self, component: Component, pattern: str, timeout_s: float) -> re.Match[str]:
        """Wait until the component's output has a line matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in component.log.read_text(errors="replace").splitlines():
                if m := regex.search(line):
                    return m
            self.check_alive()
            time.sleep(0.1)
        raise DemoError(
            f"{component.name} did not print /{pattern}/ within {timeout_s:g} s; its log:\n"
            f"{_tail(component.log)}"
        )

    def stop_all(self) -> None:
        """SIGTERM every group (newest first), then SIGKILL what is left after the grace."""
        for c in reversed(self.components):
            _signal_group(c.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for c in reversed(self.components):
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.process.wait(max(deadline - time.monotonic(), 0.1))
        for c in self.components:
            # The leader may be gone while children of its group live on: kill the group.
            _signal_group(c.process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.process.wait(5)
        self.components.clear()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _get(url: str, token: str, timeout_s: float = 5.0) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def _wait_visible(
    groups: ProcessGroups, url: str, token: str, clusters: list[str], timeout_s: float
) -> dict[str, Any]:
    """Wait until every cluster's objects are in the view (its status says synced)."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        groups.check_alive()
        with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
            status = _get(f"{url}/api/v1/clusters", token)
            last = {c["cluster"]: c for c in status["clusters"]}
            if all(
                c in last and last[c]["syncState"] == "synced" and last[c]["objectCount"] > 0
                for c in clusters
            ):
                return last
        time.sleep(0.5)
    raise DemoError(
        f"the view did not show every cluster synced within {timeout_s:g} s "
        f"(last status: {json.dumps(last)[:2000]})"
    )


def _examples(url: str, admin: str, scoped: str, first_cluster: str) -> list[str]:
    """curl lines that work against the data now in the view."""
    h = f'-H "Authorization: Bearer {admin}"'
    apps: list[dict[str, Any]] = []
    with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
        apps = _get(f"{url}/applications", admin)
    team = ""
    with contextlib.suppress(urllib.error.URLError, OSError, ValueError, KeyError, IndexError):
        listed = _get(f"{url}/api/v1/objects?group=apps&kind=Deployment&limit=1", admin)
        team = listed["items"][0]["object"]["metadata"]["labels"].get("team", "")
    selector = urllib.parse.quote(f"team={team}" if team else "app")
    lines = [
        f"curl -s {h} {url}/api/v1/clusters",
        f"curl -s {h} '{url}/api/v1/objects?group=apps&kind=Deployment&labelSelector={selector}&limit=5'",
        f"curl -s {h} '{url}/api/v1/objects?kind=Pod&count=true'",
        f"curl -s {h} '{url}/api/v1/clusters/{first_cluster}/objects/core/v1/Namespace?limit=3'",
        f"curl -sN {h} '{url}/api/v1/watch?group=apps&kind=Deployment'   # change feed (SSE)",
    ]
    if apps:
        app = urllib.parse.quote(apps[0]["name"])
        lines.append(f"curl -s {h} {url}/applications/{app}/serverGroups")
    lines.append(
        f'curl -s -H "Authorization: Bearer {scoped}" {url}/api/v1/clusters'
        f"   # token limited to {first_cluster}"
    )
    lines.append(f"curl -s {url}/openapi.json   # the API schema")
    return lines


def _wait_for_topics(
    groups: ProcessGroups, bootstrap: str, topics: list[str], timeout_s: float
) -> None:
    """Wait until the producers have created every cluster topic."""

    async def existing() -> set[str]:
        admin = admin_client(KafkaConnection(bootstrap_servers=bootstrap))
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    deadline = time.monotonic() + timeout_s
    while not set(topics) <= asyncio.run(existing()):
        groups.check_alive()
        if time.monotonic() > deadline:
            raise DemoError(f"the producers did not create {topics} within {timeout_s:g} s")
        time.sleep(0.5)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        # Once: a second Ctrl-C must not cut the cleanup short (it is bounded anyway).
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        raise _Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@click.command("demo")
@click.option(
    "--clusters", "cluster_count", type=click.IntRange(1, 50), default=3, show_default=True
)
@click.option(
    "--objects", type=click.IntRange(min=10), default=200, show_default=True, help="Per cluster."
)
@click.option(
    "--churn",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Changes per second across all clusters.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Query API port (0: any free port).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Store, tokens and logs (default: .kubedelta/demo in the checkout or cwd).",
)
@click.option(
    "--topic-prefix",
    default=DEFAULT_TOPIC_PREFIX,
    show_default=True,
    help="Kafka topics are <prefix>.<cluster>.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop by itself after this many seconds once ready (tests).",
)
@click.option(
    "--ready-timeout",
    type=click.FloatRange(min=1),
    default=180.0,
    show_default=True,
    help="Seconds to wait for the pipeline to show every cluster.",
)
def demo(
    cluster_count: int,
    objects: int,
    churn: float,
    port: int,
    work_dir: Path | None,
    topic_prefix: str,
    duration: float | None,
    ready_timeout: float,
) -> None:
    """Run broker, simulator, producers, consumer and query API; print example queries."""
    config = broker.LocalBrokerConfig.from_env(os.environ)
    work = work_dir or (config.home / "demo")
    store = work / "store"
    logs = work / "logs"
    shutil.rmtree(store, ignore_errors=True)  # a fresh view each run (Kafka still has the log)
    logs.mkdir(parents=True, exist_ok=True)
    clusters = [f"c{i}" for i in range(1, cluster_count + 1)]
    admin, scoped = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    tokens_file = work / "tokens.yaml"
    tokens_file.write_text(
        yaml.safe_dump(
            {
                "tokens": {
                    admin: {"name": "demo-admin", "clusters": ["*"], "namespaces": ["*"]},
                    scoped: {"name": "demo-c1", "clusters": [clusters[0]], "namespaces": ["*"]},
                }
            }
        )
    )
    tokens_file.chmod(0o600)
    groups = ProcessGroups(logs)
    with _stop_on_signals():
        try:
            click.echo("starting Kafka (first run downloads the jars) ...", err=True)
            with broker.borrowed(config) as bootstrap:
                try:
                    _run(
                        groups,
                        bootstrap,
                        clusters,
                        objects,
                        churn,
                        port,
                        store,
                        tokens_file,
                        topic_prefix,
                        admin,
                        scoped,
                        duration,
                        ready_timeout,
                    )
                finally:
                    click.echo("stopping ...", err=True)
                    groups.stop_all()
        except _Stop as stop:
            click.echo(f"stopped ({stop})", err=True)
        except broker.BrokerError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo("demo stopped; logs in " + str(logs), err=True)


def _run(
    groups: ProcessGroups,
    bootstrap: str,
    clusters: list[str],
    objects: int,
    churn: float,
    port: int,
    store: Path,
    tokens_file: Path,
    topic_prefix: str,
    admin: str,
    scoped: str,
    duration: float | None,
    ready_timeout: float,
) -> None:
    sim = groups.start(
        "simulator",
        [
            "simulate",
            "--clusters",
            str(len(clusters)),
            "--objects",
            str(objects),
            "--churn",
            str(churn),
            "--port",
            "0",
            "--prefix",
            "c",
        ],
    )
    base = groups.wait_line(sim, r"base URL: (\S+)", 120).group(1)
    groups.start(
        "producers",
        [
            "produce",
            "--clusters",
            ",".join(clusters),
            "--api-url-template",
            base + "/clusters/{cluster}",
            "--bootstrap",
            bootstrap,
            "--topic-prefix",
            topic_prefix,
            "--health-port",
            "0",
            "--digest-interval-s",
            "10",
        ],
    )
    # The consumer subscribes by pattern; starting it once the topics exist spares it
    # a metadata refresh (and the demo a wait) before it sees them.
    _wait_for_topics(groups, bootstrap, [topic_for(c, topic_prefix) for c in clusters], 120)
    groups.start(
        "consumer",
        [
            "consume",
            "--data-dir",
            str(store),
            "--bootstrap",
            bootstrap,
            "--topic-prefix",
            topic_prefix,
        ],
    )
    query = groups.start(
        "query",
        [
            "serve",
            "--data-dir",
            str(store),
            "--port",
            str(port),
            "--tokens",
            str(tokens_file),
            "--topic-prefix",
            topic_prefix,
        ],
    )
    url = groups.wait_line(query, r"query: (http://\S+)", 120).group(1)
    click.echo(f"query API at {url}; waiting for {len(clusters)} clusters to sync ...", err=True)
    _wait_visible(groups, url, admin, clusters, ready_timeout)
    click.echo("")
    click.echo(f"kubedelta demo is running: {url}   (Ctrl-C stops everything)")
    click.echo(f"  admin token:      {admin}")
    click.echo(f"  token for {clusters[0]}:   {scoped}")
    click.echo(f"  tokens file:      {tokens_file}")
    click.echo("try:")
    for line in _examples(url, admin, scoped, clusters[0]):
        click.echo(f"  {line}")
    sys.stdout.flush()
    deadline = time.monotonic() + duration if duration is not None else None
    while deadline is None or time.monotonic() < deadline:
        groups.check_alive()
        time.sleep(0.5)
