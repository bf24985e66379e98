"""``kubedelta serve``: the HTTP query API over a view, in its own process.

It opens the consumer's store (``--data-dir``, the same directory ``kubedelta
consume`` writes) as a read-only RocksDB secondary and serves it with uvicorn on
127.0.0.1. Prints ``query: http://127.0.0.1:<port>`` on stdout once it accepts
connections (``--port 0`` picks a free port).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import click
import uvicorn
import uvloop

from deltas.errors import KubedeltaError
from deltas.keys import DEFAULT_TOPIC_PREFIX
from plumbing.gctune import freeze_heap, raise_gc_thresholds
from query.app import create_asgi
from query.auth import TokenTable, load_tokens
from query.config import DEFAULT_CATCH_UP_INTERVAL_S, QueryConfig
from query.service import QueryService
from store import StoreError, StoreOptions


def _continue_secret(tokens_file: Path, secret_file: Path | None) -> bytes:
    """Key of continue tokens: from a file, or derived from the tokens file, so tokens
    survive restarts (and die when the tokens file changes)."""
    if secret_file is not None:
        secret = secret_file.read_bytes().strip()
        if len(secret) < 16:
            raise click.ClickException(f"{secret_file}: a continue secret needs >= 16 bytes")
        return secret
    return hmac.new(tokens_file.read_bytes(), b"kubedelta continue tokens", hashlib.sha256).digest()


def _wait_for_store(path: Path, timeout_s: float) -> None:
    """The consumer creates the store; a query started beside it may have to wait."""
    deadline = time.monotonic() + timeout_s
    while not (path / "CURRENT").exists():
        if time.monotonic() > deadline:
            raise click.ClickException(
                f"no store at {path} after {timeout_s:g} s: start `kubedelta consume` first"
            )
        time.sleep(0.2)


def _open_when_ready(config: QueryConfig, tokens: TokenTable, timeout_s: float) -> QueryService:
    """Open the store, retrying while the consumer is still creating it (its column
    families appear a moment after CURRENT)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return QueryService.open(config, tokens)
        except StoreError as exc:
            if time.monotonic() > deadline:
                raise click.ClickException(str(exc)) from exc
            time.sleep(0.2)
        except KubedeltaError as exc:
            raise click.ClickException(str(exc)) from exc


@click.command("serve")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The consumer's store directory (kubedelta consume --data-dir).",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8080,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Tokens file (YAML or JSON): token -> clusters and namespaces it may read.",
)
@click.option(
    "--history-retention",
    type=click.IntRange(min=0),
    default=StoreOptions().history_retention_s,
    show_default=True,
    help="Seconds of history the consumer keeps (must match it): older ?at= answers 410.",
)
@click.option(
    "--topic-prefix",
    default=DEFAULT_TOPIC_PREFIX,
    show_default=True,
    help="The consumer's topic prefix (per-partition offsets in cluster status).",
)
@click.option(
    "--block-cache-mb",
    type=click.IntRange(min=8),
    default=512,
    show_default=True,
    help="RocksDB block cache of this reader. Index and filter blocks live in it: at 1M"
    " objects below ~192 MiB they thrash and a point read costs ~1.7 ms instead of ~20 us.",
)
@click.option(
    "--catch-up-interval",
    type=click.FloatRange(min=0.01),
    default=DEFAULT_CATCH_UP_INTERVAL_S,
    show_default=True,
    help="Longest seconds between catch-ups with the consumer's writes (on Linux they"
    " also follow each commit, noticed with inotify).",
)
@click.option(
    "--secondary-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="This process's RocksDB secondary directory (default: a temporary one).",
)
@click.option(
    "--continue-secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="HMAC key of continue tokens (default: derived from the tokens file).",
)
@click.option(
    "--wait-for-store",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the consumer to create the store.",
)
@click.option("--log-level", default="warning", show_default=True, help="uvicorn log level.")
def serve(
    data_dir: Path,
    port: int,
    tokens_file: Path,
    history_retention: int,
    topic_prefix: str,
    block_cache_mb: int,
    catch_up_interval: float,
    secondary_dir: Path | None,
    continue_secret_file: Path | None,
    wait_for_store: float,
    log_level: str,
) -> None:
    """Serve the query API (docs/query.md) over the view in DATA_DIR."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        tokens = load_tokens(tokens_file)
    except KubedeltaError as exc:
        raise click.ClickException(str(exc)) from exc
    _wait_for_store(data_dir, wait_for_store)
    own_secondary = secondary_dir is None
    secondary = secondary_dir or Path(tempfile.mkdtemp(prefix="kubedelta-query-"))
    try:
        config = QueryConfig(
            store_path=data_dir,
            secondary_path=secondary,
            continue_secret=_continue_secret(tokens_file, continue_secret_file),
            store_options=StoreOptions(
                history_retention_s=history_retention,
                topic_prefix=topic_prefix,
                block_cache_bytes=block_cache_mb * 1024 * 1024,
            ),
            catch_up_interval_s=catch_up_interval,
        )
        service = _open_when_ready(config, tokens, wait_for_store)
        # Requests, catch-ups and feed renders allocate without cycles; with the default
        # thresholds full collections paused the service 70-100 ms every ~5 s under
        # 10,000 changes/s (every feed client and request waited).
        freeze_heap()
        raise_gc_thresholds()
        try:
            uvloop.run(_serve(service, port, log_level))
        finally:
            service.close()
    finally:
        if own_secondary:
            shutil.rmtree(secondary, ignore_errors=True)


def _exit_on_signal(signum: int, _frame: object) -> None:
    """SIGTERM outside uvicorn's graceful shutdown: while waiting for the store, and
    right after the shutdown, when uvicorn puts back the handler it found and raises the
    signal again. With the default handler the process would die there, before the
    store is closed and the secondary directory removed (a temp dir left per restart)."""
    raise SystemExit(128 + signum)


async def _serve(service: QueryService, port: int, log_level: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_asgi(service),
            log_level=log_level,
            access_log=False,
            http="httptools",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )
    # uvicorn installs its own SIGINT/SIGTERM handlers (graceful shutdown) in serve().
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn exposes a flag only
        await asyncio.sleep(0.02)
    if server.started:
        print(f"query: http://127.0.0.1:{bound}", flush=True)
    try:
        await task
    finally:
        with contextlib.suppress(OSError):
            sock.close()
