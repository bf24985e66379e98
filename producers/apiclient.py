"""Thin HTTP I/O to the Kubernetes API: GET raw JSON bytes and stream watch lines.

kubernetes-asyncio provides what it is good at, configuration and authentication
(kubeconfig, in-cluster ServiceAccount with its token refresh, client certificates);
requests go through our own aiohttp session and are read raw (LIST pages as bytes,
WATCH streams as lines), never as kubernetes-asyncio model objects.

``HttpPool`` is one aiohttp session per process, shared by every ``KubeApi`` of a
multiplexed producer: hundreds of clusters cost one session, one TLS context per
distinct TLS setup, and no per-request environment lookups. (kubernetes-asyncio's
own ``ApiClient`` builds a TLS context per client, ~40 ms of CPU loading the system
CA store, and its session reads proxy variables and ``~/.netrc`` on a worker thread
for every request: at 250 clusters that was a fifth of the producer's CPU.)
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader
from yarl import URL

from producers.config import ApiConnectionConfig
from producers.errors import (
    ApiConfigError,
    ApiError,
    ApiRejectedError,
    ApiThrottledError,
    ApiUnavailableError,
    ResourceGoneError,
)

#: A single watch line (one event) larger than this is refused: etcd caps objects
#: at ~1.5 MiB, so this only trips on a broken stream.
MAX_WATCH_LINE = 16 * 1024 * 1024

#: aiohttp's read buffer high-water mark: watch events of large objects exceed its
#: 64 KiB default (as in kubernetes-asyncio).
READ_BUFFER_BYTES = 2 * 1024 * 1024

USER_AGENT = "kubedelta-producer"


class WatchIdleError(ApiUnavailableError):
    """The watch delivered nothing, not even a bookmark, for the idle timeout."""


def status_error(status: int, body: bytes, retry_after: str | None = None) -> ApiError:
    """The error for an HTTP error status or a watch ERROR event (a k8s Status object)."""
    message = body[:500].decode(errors="replace")
    try:
        doc = orjson.loads(body)
        if isinstance(doc, dict) and doc.get("message"):
            message = str(doc["message"])
    except orjson.JSONDecodeError:
        pass
    text = f"HTTP {status}: {message}"
    if status == 410 or "too old resource version" in message:
        return ResourceGoneError(text, 410)
    if status == 429:
        try:
            hint = float(retry_after) if retry_after else 0.0
        except ValueError:
            hint = 0.0
        return ApiThrottledError(text, 429, hint)
    if status >= 500 or status == 0:
        return ApiUnavailableError(text, status)
    return ApiRejectedError(text, status)


def error_of_event(obj: Mapping[str, Any]) -> ApiError:
    """A watch ERROR event's Status object as an error (410 -> ResourceGoneError)."""
    code = obj.get("code")
    status = int(code) if isinstance(code, int) else 500
    return status_error(status, orjson.dumps(obj))


@dataclass(frozen=True, slots=True)
class TlsSetup:
    """What makes two API servers' TLS contexts differ (kubernetes-asyncio's fields)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    strict: bool = True  #: False: VERIFY_X509_STRICT off (kubeconfig option)

    @classmethod
    def of(cls, configuration: k8s_client.Configuration) -> TlsSetup:
        return cls(
            ca_file=configuration.ssl_ca_cert or None,
            cert_file=configuration.cert_file or None,
            key_file=configuration.key_file or None,
            verify=bool(configuration.verify_ssl),
            strict=not configuration.disable_strict_ssl_verification,
        )

    def context(self) -> ssl.SSLContext:
        """Built as kubernetes-asyncio's ``RESTClientObject`` builds it."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, keyfile=self.key_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if not self.strict:
            context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        return context


class HttpPool:
    """One aiohttp session for every ``KubeApi`` of a process, plus a TLS context per
    distinct ``TlsSetup``. Connections are pooled per (host, port, TLS context), so
    clusters never share a connection they should not."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[TlsSetup, ssl.SSLContext] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # No cap: each cluster bounds its own requests (a watch per kind,
                # list_concurrency LISTs, a few discovery GETs).
                connector=aiohttp.TCPConnector(limit=0),
                # Proxies are resolved once per API server (KubeApi.connect), not by
                # aiohttp on a worker thread for every request.
                trust_env=False,
                read_bufsize=READ_BUFFER_BYTES,
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    def tls_context(self, setup: TlsSetup) -> ssl.SSLContext:
        context = self._contexts.get(setup)
        if context is None:
            context = self._contexts[setup] = setup.context()
        return context

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _env_proxy(url: URL) -> URL | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY, ...) names for ``url``, if any."""
    try:
        proxy, _auth = aiohttp.helpers.get_env_proxy_for_url(url)
    except LookupError:
        return None
    return proxy


class KubeApi:
    """One API server, over a (possibly shared) ``HttpPool``."""

    def __init__(
        self,
        configuration: k8s_client.Configuration,
        pool: HttpPool,
        owns_pool: bool = False,
    ) -> None:
        self._configuration = configuration
        self._pool = pool
        self._owns_pool = owns_pool
        self._base = str(configuration.host).rstrip("/")
        base = URL(self._base)
        self._tls: ssl.SSLContext | bool = (
            pool.tls_context(TlsSetup.of(configuration)) if base.scheme == "https" else True
        )
        self._server_hostname: str | None = configuration.tls_server_name or None
        proxy = configuration.proxy
        self._proxy: URL | None = URL(proxy) if proxy else _env_proxy(base)
        self._proxy_headers: Mapping[str, str] | None = configuration.proxy_headers or None

    @classmethod
    async def connect(cls, config: ApiConnectionConfig, pool: HttpPool | None = None) -> KubeApi:
        """From a URL, a kubeconfig, or the in-cluster ServiceAccount. Without ``pool``
        the API owns a pool of its own (closed with it)."""
        configuration = k8s_client.Configuration()
        if config.url:
            configuration.host = config.url.rstrip("/")
            if config.token:
                configuration.api_key = {"BearerToken": config.token}
                configuration.api_key_prefix = {"BearerToken": "Bearer"}
        elif config.kubeconfig:
            try:
                await k8s_config.load_kube_config(
                    config_file=config.kubeconfig,
                    context=config.context,
                    client_configuration=configuration,
                    persist_config=False,
                )
            except Exception as exc:  # YAML errors, wrong shapes (TypeError, KeyError), ...
                raise ApiConfigError(
                    f"cannot use kubeconfig {config.kubeconfig!r}"
                    f"{f' (context {config.context!r})' if config.context else ''}: {exc}"
                ) from exc
        else:
            folder = Path(config.service_account_dir)
            loader = InClusterConfigLoader(
                token_filename=str(folder / "token"), cert_filename=str(folder / "ca.crt")
            )
            try:
                loader.load_and_set(configuration)
            except (k8s_config.ConfigException, OSError) as exc:
                raise ApiConfigError(
                    f"no in-cluster ServiceAccount to reach the API server ({exc}); give "
                    f"--kubeconfig or --api-url outside a cluster"
                ) from exc
        if pool is None:
            return cls(configuration, HttpPool(), owns_pool=True)
        return cls(configuration, pool)

    @property
    def host(self) -> str:
        return self._base

    async def close(self) -> None:
        if self._owns_pool:
            await self._pool.close()

    async def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        # Runs the refresh hook (in-cluster token rotation, kubeconfig exec plugins).
        token = await self._configuration.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        return headers

    async def _open(
        self,
        path: str,
        params: Mapping[str, str],
        timing: aiohttp.ClientTimeout,
        accept: str = "application/json",
    ) -> aiohttp.ClientResponse:
        try:
            response = await self._pool.session.get(
                self._base + path,
                params=params,
                headers=await self._headers(accept),
                timeout=timing,
                ssl=self._tls,
                server_hostname=self._server_hostname,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ApiUnavailableError(f"GET {path} failed: {exc!r}") from exc
        if response.status >= 400:
            try:
                body = await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError):
                body = b""
            finally:
                response.release()
            raise status_error(response.status, body, response.headers.get("Retry-After"))
        return response

    async def get_bytes(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        accept: str = "application/json",
    ) -> bytes:
        """One GET, the whole body as bytes (LIST pages, discovery)."""
        response = await self._open(
            path, params or {}, aiohttp.ClientTimeout(total=timeout_s), accept
        )
        try:
            return await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ApiUnavailableError(f"reading GET {path} failed: {exc!r}") from exc
        finally:
            response.release()

    async def get_json(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        accept: str = "application/json",
    ) -> Any:
        return orjson.loads(await self.get_bytes(path, params, timeout_s, accept))

    async def watch_lines(
        self,
        path: str,
        params: Mapping[str, str],
        idle_timeout_s: float,
        connect_timeout_s: float = 30.0,
    ) -> AsyncIterator[memoryview]:
        """Open a WATCH and yield its JSON lines until the server ends the stream.

        Lines are views into the chunk they arrived in (see ``WatchLines``).
        Raises WatchIdleError when nothing arrives for ``idle_timeout_s``, and
        ApiUnavailableError when the connection breaks.
        """
        timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=idle_timeout_s
        )
        response = await self._open(path, {**params, "watch": "true"}, timeout)
        lines = WatchLines(path)
        try:
            async for chunk in response.content.iter_any():
                for line in lines.feed(chunk):
                    yield line
            last = lines.end()
            if last is not None:
                yield last
        except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
            raise WatchIdleError(f"watch {path} idle for {idle_timeout_s:.0f} s") from exc
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise ApiUnavailableError(f"watch {path} broke: {exc!r}") from exc
        finally:
            response.release()
            response.close()


class WatchLines:
    """Splits a watch stream's chunks into its non-empty lines. Pure code.

    Lines are memoryviews into the chunk, not copies: at churn rates copying every
    chunk (to prepend the previous chunk's unfinished line) and then every line
    was a measurable share of the producer's CPU. Only a line that spans chunks is
    joined into bytes of its own.
    """

    __slots__ = ("_path", "_pending")

    def __init__(self, path: str) -> None:
        self._path = path
        self._pending = b""  #: the unfinished last line so far

    def feed(self, chunk: bytes) -> list[memoryview]:
        """The lines ``chunk`` completes."""
        out: list[memoryview] = []
        start = 0
        if self._pending:
            end = chunk.find(b"\n")
            if end < 0:
                self._pending += chunk
                self._check_pending()
                return out
            line = self._pending + chunk[:end]
            self._pending = b""
            out.append(memoryview(line))
            start = end + 1
        view = memoryview(chunk)
        find = chunk.find
        while (end := find(b"\n", start)) >= 0:
            if end > start:
                out.append(view[start:end])
            start = end + 1
        if start < len(chunk):
            self._pending = chunk[start:]
            self._check_pending()
        return out

    def end(self) -> memoryview | None:
        """The unterminated last line, if it is more than whitespace."""
        pending, self._pending = self._pending, b""
        return memoryview(pending) if pending.strip() else None

    def _check_pending(self) -> None:
        if len(self._pending) > MAX_WATCH_LINE:
            raise ApiUnavailableError(f"watch line over {MAX_WATCH_LINE} bytes on {self._path}")
