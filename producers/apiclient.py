"""Thin I/O over kubernetes-asyncio's transport: GET raw JSON bytes and stream watch
lines. Never builds kubernetes-asyncio model objects: ``ApiClient.call_api`` with
``_preload_content=False`` hands back the aiohttp response, which we read raw and
parse with orjson. Auth (kubeconfig, in-cluster ServiceAccount with token refresh)
and TLS stay kubernetes-asyncio's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from producers.config import ApiConnectionConfig
from producers.errors import (
    ApiError,
    ApiRejectedError,
    ApiThrottledError,
    ApiUnavailableError,
    ResourceGoneError,
)

#: A single watch line (one event) larger than this is refused: etcd caps objects
#: at ~1.5 MiB, so this only trips on a broken stream.
MAX_WATCH_LINE = 16 * 1024 * 1024


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


class KubeApi:
    """One API server. Owns its kubernetes-asyncio ``ApiClient`` (and so its connections)."""

    def __init__(self, api_client: k8s_client.ApiClient) -> None:
        self._client = api_client

    @classmethod
    async def connect(cls, config: ApiConnectionConfig) -> KubeApi:
        """Build the client from a URL, a kubeconfig, or the in-cluster ServiceAccount."""
        configuration = k8s_client.Configuration()
        if config.url:
            configuration.host = config.url.rstrip("/")
            if config.token:
                configuration.api_key = {"BearerToken": config.token}
                configuration.api_key_prefix = {"BearerToken": "Bearer"}
        elif config.kubeconfig:
            await k8s_config.load_kube_config(
                config_file=config.kubeconfig,
                context=config.context,
                client_configuration=configuration,
                persist_config=False,
            )
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        configuration.connection_pool_maxsize = config.max_connections
        return cls(k8s_client.ApiClient(configuration))

    @property
    def host(self) -> str:
        return str(self._client.configuration.host)

    async def close(self) -> None:
        await self._client.close()

    async def _open(
        self, path: str, params: Mapping[str, str], timing: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        try:
            response: aiohttp.ClientResponse = await self._client.call_api(
                path,
                "GET",
                query_params=list(params.items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timing,
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
        self, path: str, params: Mapping[str, str] | None = None, timeout_s: float = 60.0
    ) -> bytes:
        """One GET, the whole body as bytes (LIST pages, discovery)."""
        response = await self._open(path, params or {}, aiohttp.ClientTimeout(total=timeout_s))
        try:
            return await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ApiUnavailableError(f"reading GET {path} failed: {exc!r}") from exc
        finally:
            response.release()

    async def get_json(
        self, path: str, params: Mapping[str, str] | None = None, timeout_s: float = 60.0
    ) -> Any:
        return orjson.loads(await self.get_bytes(path, params, timeout_s))

    async def watch_lines(
        self,
        path: str,
        params: Mapping[str, str],
        idle_timeout_s: float,
        connect_timeout_s: float = 30.0,
    ) -> AsyncIterator[bytes]:
        """Open a WATCH and yield its JSON lines until the server ends the stream.

        Raises WatchIdleError when nothing arrives for ``idle_timeout_s``, and
        ApiUnavailableError when the connection breaks.
        """
        timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=idle_timeout_s
        )
        response = await self._open(path, {**params, "watch": "true"}, timeout)
        pending = b""
        try:
            async for chunk in response.content.iter_any():
                if pending:
                    chunk = pending + chunk
                lines = chunk.split(b"\n")
                pending = lines.pop()
                if len(pending) > MAX_WATCH_LINE:
                    raise ApiUnavailableError(f"watch line over {MAX_WATCH_LINE} bytes on {path}")
                for line in lines:
                    if line:
                        yield line
            if pending.strip():
                yield pending
        except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
            raise WatchIdleError(f"watch {path} idle for {idle_timeout_s:.0f} s") from exc
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise ApiUnavailableError(f"watch {path} broke: {exc!r}") from exc
        finally:
            response.release()
            response.close()
