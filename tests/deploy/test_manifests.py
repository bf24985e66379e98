"""The producer's Kubernetes manifests (deploy/k8s/producer): they parse, and they
reference each other consistently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubedelta.cmd_produce import ProduceSettings

PRODUCER = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "producer"


def load_all() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(PRODUCER.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict) and doc.get("kind"), f"{path.name}: not a k8s object"
            docs.append(doc)
    return docs


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_every_manifest_parses_and_kustomization_lists_them_all() -> None:
    docs = load_all()
    assert {d["kind"] for d in docs} == {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "Deployment",
    }
    kustomization = yaml.safe_load((PRODUCER / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in PRODUCER.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_namespaced_objects_live_in_the_namespace() -> None:
    docs = load_all()
    namespace = one(docs, "Namespace")["metadata"]["name"]
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "ConfigMap", "Secret", "Deployment"):
            assert doc["metadata"]["namespace"] == namespace, doc["kind"]


def test_cluster_role_is_read_only() -> None:
    role = one(load_all(), "ClusterRole")
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"}
    resource_rules = [r for r in role["rules"] if "resources" in r]
    assert any("*" in r["resources"] and "*" in r["apiGroups"] for r in resource_rules)


def test_binding_ties_the_deployments_service_account_to_the_role() -> None:
    docs = load_all()
    account = one(docs, "ServiceAccount")["metadata"]
    binding = one(docs, "ClusterRoleBinding")
    role = one(docs, "ClusterRole")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["name"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert {
        "kind": "ServiceAccount",
        "name": account["name"],
        "namespace": account["namespace"],
    } in (binding["subjects"])


def test_secret_and_config_references_exist() -> None:
    docs = load_all()
    secret = one(docs, "Secret")
    config = one(docs, "ConfigMap")
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    assert refs, "Kafka credentials must come from the Secret"
    for ref in refs:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret_keys
    for source in container["envFrom"]:
        assert source["configMapRef"]["name"] == config["metadata"]["name"]
    env_names = {e["name"] for e in container["env"]}
    assert {"KUBEDELTA_KAFKA_USERNAME", "KUBEDELTA_KAFKA_PASSWORD"} <= env_names
    # Credentials never sit in the ConfigMap.
    assert not any("PASSWORD" in k or "HASH_KEY" in k for k in config["data"])


def test_every_setting_is_one_the_producer_reads() -> None:
    docs = load_all()
    config = one(docs, "ConfigMap")["data"]
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    names = set(config) | {e["name"] for e in container["env"]}
    fields = {f"KUBEDELTA_{name.upper()}" for name in ProduceSettings.model_fields}
    assert names <= fields, names - fields
    settings = ProduceSettings(
        **{k.removeprefix("KUBEDELTA_").lower(): v for k, v in config.items()}
    )
    assert settings.health_host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[container["readinessProbe"]["httpGet"]["port"]] == settings.health_port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["command"] == ["kubedelta", "produce"]


def test_the_kafka_ca_is_mounted_from_the_secret_where_the_settings_point() -> None:
    docs = load_all()
    secret = one(docs, "Secret")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] in volumes]
    source = volumes[mount["name"]]["secret"]
    assert source["secretName"] == secret["metadata"]["name"]
    assert {i["key"] for i in source["items"]} <= set(secret["stringData"])
    mounted = {f"{mount['mountPath']}/{i['path']}" for i in source["items"]}
    settings = one(docs, "ConfigMap")["data"]
    assert settings["KUBEDELTA_KAFKA_SSL_CAFILE"] in mounted
    assert mount["readOnly"] is True
