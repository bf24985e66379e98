"""The API client over real TLS, the way a producer reaches a real cluster: in-cluster
(ServiceAccount token + cluster CA + KUBERNETES_SERVICE_HOST/PORT) and by kubeconfig
(embedded CA, client certificate). The simulator serves HTTPS with a certificate from a
throwaway CA; the server side verifies client certificates where the test says so."""

from __future__ import annotations

import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from producer_harness import (
    KIND_GROUPS,
    latest_bodies,
    producer_config,
    read_records,
    simulator_fingerprints,
    start_producer,
    topic_fingerprints,
)

from plumbing.certs import KeyPair, issue, make_ca
from producers.apiclient import KubeApi
from producers.config import ApiConnectionConfig
from producers.errors import ApiConfigError, ApiRejectedError, ApiUnavailableError
from simulator import Simulator, SimulatorConfig

TOKEN = "sa-token-0123456789"


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _server_context(tmp: Path, ca: KeyPair, *, client_certs: bool = False) -> ssl.SSLContext:
    """The API server's side: a certificate for 127.0.0.1 signed by ``ca``; with
    ``client_certs`` a client must present a certificate signed by ``ca`` too."""
    leaf = issue(ca, "kube-apiserver", dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(
        _write(tmp / "server.crt", leaf.cert_pem), _write(tmp / "server.key", leaf.key_pem)
    )
    if client_certs:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=_write(tmp / "client-ca.crt", ca.cert_pem))
    return context


def _service_account(tmp: Path, ca_pem: bytes, token: str = TOKEN) -> Path:
    folder = tmp / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text(token)
    (folder / "ca.crt").write_bytes(ca_pem)
    (folder / "namespace").write_text("kubedelta")
    return folder


def _in_cluster_env(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    host, port = base.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)


def _simulator(required_token: str | None = None) -> Simulator:
    return Simulator(
        SimulatorConfig(
            clusters=("t1",),
            objects_per_cluster=40,
            seed=7,
            root_cluster="t1",
            required_token=required_token,
        )
    )


async def _pod_names(api: KubeApi) -> set[str]:
    return {p["metadata"]["name"] for p in (await api.get_json("/api/v1/pods"))["items"]}


def _sim_pod_names(sim: Simulator) -> set[str]:
    return {o["metadata"]["name"] for o in sim.cluster("t1").objects() if o.get("kind") == "Pod"}


@contextlib.asynccontextmanager
async def _in_cluster_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str = TOKEN
) -> AsyncIterator[tuple[Simulator, str, KubeApi]]:
    """A simulator over HTTPS that requires TOKEN, and an API client configured the
    in-cluster way with ``token`` and the cluster CA."""
    ca = make_ca("cluster-ca")
    sim = _simulator(required_token=TOKEN)
    async with sim.serve(ssl_context=_server_context(tmp_path, ca)) as base:
        _in_cluster_env(monkeypatch, base)
        account = _service_account(tmp_path, ca.cert_pem, token=token)
        api = await KubeApi.connect(ApiConnectionConfig(service_account_dir=str(account)))
        try:
            yield sim, base, api
        finally:
            await api.close()


async def test_in_cluster_service_account_lists_and_watches_over_verified_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _in_cluster_api(tmp_path, monkeypatch) as (sim, base, api):
        assert base.startswith("https://")
        assert api.host == base  # the API server root: no path prefix in-cluster
        names = await _pod_names(api)
        assert names and names == _sim_pod_names(sim)
        lines = api.watch_lines(
            "/api/v1/configmaps",
            {"resourceVersion": "0", "timeoutSeconds": "1"},
            idle_timeout_s=10,
        )
        events = [orjson.loads(line) async for line in lines]
        assert events and {e["type"] for e in events} == {"ADDED"}


async def test_in_cluster_token_is_what_authenticates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = "someone-elses-token"
    async with _in_cluster_api(tmp_path, monkeypatch, token=stranger) as (_, _, api):
        with pytest.raises(ApiRejectedError) as refused:
            await api.get_json("/api/v1/pods")
        assert refused.value.status == 401


async def test_a_server_certificate_from_another_ca_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = _simulator()
    async with sim.serve(ssl_context=_server_context(tmp_path, make_ca("real-ca"))) as base:
        _in_cluster_env(monkeypatch, base)
        account = _service_account(tmp_path, make_ca("impostor-ca").cert_pem)
        api = await KubeApi.connect(ApiConnectionConfig(service_account_dir=str(account)))
        try:
            with pytest.raises(ApiUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
                await api.get_json("/api/v1/pods")
        finally:
            await api.close()


async def test_without_a_service_account_connect_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(ApiConfigError, match=r"Service host/port is not set.*--kubeconfig"):
        await KubeApi.connect(ApiConnectionConfig(service_account_dir=str(tmp_path)))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    with pytest.raises(ApiConfigError, match="token file does not exist") as missing:
        await KubeApi.connect(ApiConnectionConfig(service_account_dir=str(tmp_path)))
    assert missing.value.__cause__ is not None and not missing.value.retriable


def _kubeconfig(
    path: Path, server: str, ca: KeyPair, client: KeyPair | None, token: str | None = None
) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    user: dict[str, str] = {}
    if client is not None:
        user["client-certificate-data"] = b64(client.cert_pem)
        user["client-key-data"] = b64(client.key_pem)
    if token is not None:
        user["token"] = token
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sim",
                "cluster": {"server": server, "certificate-authority-data": b64(ca.cert_pem)},
            }
        ],
        "users": [{"name": "producer", "user": user}],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "producer"}}],
        "current-context": "sim",
    }
    path.write_bytes(orjson.dumps(doc))  # JSON is YAML
    return str(path)


async def test_kubeconfig_with_embedded_ca_and_client_certificate(tmp_path: Path) -> None:
    ca = make_ca("cluster-ca")
    sim = _simulator()
    async with sim.serve(ssl_context=_server_context(tmp_path, ca, client_certs=True)) as base:
        client = issue(ca, "kubedelta-producer", server=False)
        good = _kubeconfig(tmp_path / "good.yaml", f"{base}/clusters/t1", ca, client)
        api = await KubeApi.connect(ApiConnectionConfig(kubeconfig=good))
        try:
            assert await _pod_names(api) == _sim_pod_names(sim)
        finally:
            await api.close()
        # A certificate from another CA, or none (a token alone), fails the handshake.
        stranger = issue(make_ca("other-ca"), "kubedelta-producer", server=False)
        for name, cert, token in (("other.yaml", stranger, None), ("none.yaml", None, TOKEN)):
            config = _kubeconfig(tmp_path / name, f"{base}/clusters/t1", ca, cert, token)
            api = await KubeApi.connect(ApiConnectionConfig(kubeconfig=config))
            try:
                with pytest.raises(ApiUnavailableError):
                    await api.get_json("/api/v1/pods")
            finally:
                await api.close()


async def test_an_unusable_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.yaml")
    with pytest.raises(ApiConfigError, match=r"absent\.yaml"):
        await KubeApi.connect(ApiConnectionConfig(kubeconfig=missing))
    for name, text in (("broken.yaml", "clusters: [\n  - {oops\n"), ("scalar.yaml", "hello\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ApiConfigError, match=name.replace(".", r"\.")) as bad:
            await KubeApi.connect(ApiConnectionConfig(kubeconfig=str(tmp_path / name)))
        assert bad.value.__cause__ is not None
    ca = make_ca("cluster-ca")
    config = _kubeconfig(tmp_path / "k.yaml", "https://127.0.0.1:1", ca, None, TOKEN)
    with pytest.raises(ApiConfigError, match="context 'nope'"):
        await KubeApi.connect(ApiConnectionConfig(kubeconfig=config, context="nope"))


@pytest.mark.kafka
async def test_producer_in_cluster_over_https_streams_the_cluster(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = make_ca("cluster-ca")
    sim = _simulator(required_token=TOKEN)
    async with sim.serve(ssl_context=_server_context(tmp_path, ca)) as base:
        _in_cluster_env(monkeypatch, base)
        account = _service_account(tmp_path, ca.cert_pem)
        config = producer_config(
            kafka_bootstrap,
            "",
            api=ApiConnectionConfig(service_account_dir=str(account)),
            cluster="t1",
        )
        running = await start_producer(config)
        try:
            await running.wait_ready()
            await running.wait_drained()
            bodies = latest_bodies(await read_records(kafka_bootstrap, running.producer.topic))
        finally:
            await running.close()
    expected = simulator_fingerprints(sim.cluster("t1"), KIND_GROUPS.values(), config)
    assert expected and topic_fingerprints(bodies) == expected
