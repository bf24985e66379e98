"""The API client's shared HTTP pool: bearer tokens reach the server, TLS contexts are
built once per TLS setup and shared, and every cluster's requests go to its own URL."""

from __future__ import annotations

import ssl

import pytest
from kubernetes_asyncio import client as k8s_client

from producers.apiclient import HttpPool, KubeApi, TlsSetup
from producers.config import ApiConnectionConfig
from producers.errors import ApiRejectedError
from simulator import Simulator, SimulatorConfig


async def test_a_bearer_token_is_sent_and_a_missing_one_is_refused() -> None:
    sim = Simulator(
        SimulatorConfig(clusters=("t1",), objects_per_cluster=5, seed=2, required_token="s3cret")
    )
    async with sim.serve() as base:
        pool = HttpPool()
        good = await KubeApi.connect(
            ApiConnectionConfig(url=f"{base}/clusters/t1", token="s3cret"), pool
        )
        bad = await KubeApi.connect(ApiConnectionConfig(url=f"{base}/clusters/t1"), pool)
        try:
            assert (await good.get_json("/api/v1/namespaces"))["kind"] == "NamespaceList"
            with pytest.raises(ApiRejectedError) as refused:
                await bad.get_json("/api/v1/namespaces")
            assert refused.value.status == 401
        finally:
            await good.close()
            await bad.close()
            await pool.close()


async def test_clusters_on_one_pool_each_reach_their_own_api_server() -> None:
    sim = Simulator(SimulatorConfig(clusters=("p1", "p2"), objects_per_cluster=20, seed=3))
    sim.cluster("p2").create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "only-p2"}, "data": {}}
    )
    async with sim.serve() as base:
        pool = HttpPool()
        apis = [
            await KubeApi.connect(ApiConnectionConfig(url=f"{base}/clusters/{c}"), pool)
            for c in ("p1", "p2")
        ]
        try:
            names = [
                {i["metadata"]["name"] for i in (await a.get_json("/api/v1/configmaps"))["items"]}
                for a in apis
            ]
            assert "only-p2" in names[1] and "only-p2" not in names[0]
            await apis[0].close()  # a shared pool outlives the APIs that use it
            assert (await apis[1].get_json("/api"))["kind"] == "APIVersions"
        finally:
            await apis[1].close()
            await pool.close()


def test_tls_contexts_follow_the_configuration_and_are_shared_per_setup() -> None:
    configuration = k8s_client.Configuration()
    configuration.host = "https://kube.example:6443"
    configuration.verify_ssl = False
    setup = TlsSetup.of(configuration)
    assert setup == TlsSetup(verify=False)
    context = setup.context()
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    assert TlsSetup().context().verify_mode == ssl.CERT_REQUIRED
    pool = HttpPool()
    first = KubeApi(configuration, pool)
    second = KubeApi(configuration, pool)
    assert first._tls is second._tls  # one context for every API with this setup
    plain = k8s_client.Configuration()
    plain.host = "http://127.0.0.1:8001/clusters/x"
    assert KubeApi(plain, pool)._tls is True  # no TLS context for plain http
