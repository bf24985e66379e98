"""Realistic, deterministic Kubernetes objects. Pure code: a seeded RNG, no I/O.

Objects look like what a real API server returns (ownerReferences chains,
managedFields, status with IPs and container digests, Spinnaker moniker
annotations) and carry real entropy (uids, IPs, digests, timestamps), so
compression ratios and per-object sizes measured against the simulator are
honest. The same seed and cluster name always give the same objects.
"""

from __future__ import annotations

import base64
import functools
import itertools
import math
import random
import time
from collections.abc import Iterator
from typing import Any

from simulator import kinds

Obj = dict[str, Any]

#: Creation times of generated objects lie before this instant (2024-06-01T00:00:00Z),
#: so a seeded cluster does not depend on the wall clock.
GENERATION_EPOCH_S = 1_717_200_000
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what the real name generator uses
_NAME_COUNT = len(_NAME_CHARS)
_NAME_BITS = _NAME_COUNT.bit_length()
_TEAMS = (
    "checkout",
    "payments",
    "catalog",
    "search",
    "inventory",
    "shipping",
    "identity",
    "orders",
    "billing",
    "notifications",
    "recommendations",
    "reviews",
    "cart",
    "pricing",
    "analytics",
    "gateway",
    "ledger",
    "fraud",
    "media",
    "profile",
)
_ROLES = ("api", "worker", "web", "consumer", "scheduler", "cache", "sync", "proxy", "grpc", "cron")
_ENVS = ("prod", "staging", "dev", "canary")
_STACKS = ("main", "blue", "green", "edge", "internal")
_REGISTRIES = ("registry.example.com", "ghcr.io/example", "docker.io/example")
SPINNAKER_APP = "moniker.spinnaker.io/application"
SPINNAKER_CLUSTER = "moniker.spinnaker.io/cluster"
SPINNAKER_STACK = "moniker.spinnaker.io/stack"
SPINNAKER_DETAIL = "moniker.spinnaker.io/detail"
SPINNAKER_SEQUENCE = "moniker.spinnaker.io/sequence"


def below(rng: random.Random, n: int) -> int:
    """``rng.randrange(n)`` for n > 0: the same draw (CPython's ``_randbelow``: getrandbits
    of n's bit length until one is below n) without randrange's argument checks, which
    cost more than the draw itself on churn's hot paths."""
    getrandbits = rng.getrandbits
    bits = n.bit_length()
    r = getrandbits(bits)
    while r >= n:
        r = getrandbits(bits)
    return r


def _random_name(rng: random.Random, length: int) -> str:
    """``length`` times ``rng.choice(_NAME_CHARS)`` (the same draws), joined."""
    getrandbits = rng.getrandbits
    chars = []
    for _ in range(length):
        r = getrandbits(_NAME_BITS)
        while r >= _NAME_COUNT:
            r = getrandbits(_NAME_BITS)
        chars.append(_NAME_CHARS[r])
    return "".join(chars)


def format_time(epoch_s: float) -> str:
    """RFC 3339 in UTC with second precision, as the API server writes timestamps."""
    return _format_second(math.floor(epoch_s))


@functools.lru_cache(maxsize=65_536)
def _format_second(second: int) -> str:
    # Generated objects share few distinct seconds; strftime was ~6 % of generation.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def fields_v1(part: Any, depth: int = 0) -> Obj:
    """A managedFields ``fieldsV1`` tree for ``part`` (dict keys become ``f:`` entries).

    Cut at depth 2 to keep objects near the sizes the simulator promises (real
    trees go down to every leaf, which makes them several KiB)."""
    if not isinstance(part, dict) or depth >= 2:
        return {}
    tree: Obj = {".": {}} if depth > 0 else {}
    for key, value in part.items():
        if key == "containers" and isinstance(value, list):
            # Keyed list items, with the escaped-JSON keys real managedFields have.
            tree[f"f:{key}"] = {f'k:{{"name":"{item.get("name")}"}}': {} for item in value}
        elif depth == 1:
            tree[f"f:{key}"] = {}  # what the call one level down returns (cut): saves the call
        else:
            tree[f"f:{key}"] = fields_v1(value, depth + 1)
    return tree


def managed_fields(
    obj: Obj, manager: str, status_manager: str | None, created: str, updated: str
) -> list[Obj]:
    """The managedFields the real server records: one apply/update entry for
    metadata+spec, and one for the status subresource when a controller writes it."""
    meta = obj.get("metadata", {})
    owned: Obj = {
        "metadata": {k: meta[k] for k in ("labels", "annotations", "ownerReferences") if k in meta}
    }
    for section in ("spec", "data", "stringData", "type"):
        if section in obj:
            owned[section] = obj[section]
    entries: list[Obj] = [
        {
            "manager": manager,
            "operation": "Update",
            "apiVersion": obj.get("apiVersion", "v1"),
            "time": created,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(owned),
        }
    ]
    if status_manager is not None and "status" in obj:
        entries.append(
            {
                "manager": status_manager,
                "operation": "Update",
                "apiVersion": obj.get("apiVersion", "v1"),
                "time": updated,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1({"status": obj["status"]}),
                "subresource": "status",
            }
        )
    return entries


_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (4 << 76) | (0x8000 << 48)


def uuid4_text(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))`` without building the UUID object (a hot spot
    when churn creates thousands of objects per second)."""
    h = f"{(bits & _UUID_CLEAR) | _UUID_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class ObjectFactory:
    """Makes objects from one seeded RNG; also used by churn for new Pods and status changes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    # -- entropy -------------------------------------------------------------------------
    def uid(self) -> str:
        return uuid4_text(self.rng.getrandbits(128))

    def hex(self, chars: int) -> str:
        return f"{self.rng.getrandbits(4 * chars):0{chars}x}"

    def suffix(self, length: int = 5) -> str:
        return _random_name(self.rng, length)

    def ip(self, prefix: str) -> str:
        return f"{prefix}.{self.rng.randrange(0, 255)}.{self.rng.randrange(2, 254)}"

    def past(self, max_age_s: int) -> float:
        return GENERATION_EPOCH_S - self.rng.randrange(60, max_age_s)

    # -- cluster-level objects -----------------------------------------------------------
    def namespace(self, name: str, created_s: float) -> Obj:
        created = format_time(created_s)
        obj: Obj = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": self.uid(),
                "creationTimestamp": created,
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        obj["metadata"]["managedFields"] = managed_fields(
            obj, "kubectl-create", None, created, created
        )
        return obj

    def node(self, name: str, created_s: float, internal_ip: str) -> Obj:
        created = format_time(created_s)
        heartbeat = format_time(GENERATION_EPOCH_S - self.rng.randrange(1, 40))
        cpu = self.rng.choice((4, 8, 16, 32))
        mem_ki = cpu * 4 * 1024 * 1024 - self.rng.randrange(100_000, 400_000)
        conditions = [
            {
                "type": kind,
                "status": "False",
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": created,
                "reason": reason,
                "message": message,
            }
            for kind, reason, message in (
                (
                    "MemoryPressure",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": created,
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }
        )
        images = [
            {
                "names": [
                    f"{self.rng.choice(_REGISTRIES)}/{self.rng.choice(_TEAMS)}-{self.rng.choice(_ROLES)}@sha256:{self.hex(64)}"
                ],
                "sizeBytes": self.rng.randrange(5_000_000, 900_000_000),
            }
            for _ in range(self.rng.randrange(6, 12))
        ]
        zone = self.rng.choice("abc")
        obj: Obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "uid": self.uid(),
                "creationTimestamp": created,
                "labels": {
                    "beta.kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "node.kubernetes.io/instance-type": f"m6i.{cpu // 4}xlarge",
                    "topology.kubernetes.io/region": "us-east-1",
                    "topology.kubernetes.io/zone": f"us-east-1{zone}",
                },
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": {
                "podCIDR": f"10.244.{self.rng.randrange(0, 255)}.0/24",
                "providerID": f"aws:///us-east-1{zone}/i-{self.hex(17)}",
            },
            "status": {
                "capacity": {"cpu": str(cpu), "memory": f"{mem_ki}Ki", "pods": "110"},
                "allocatable": {
                    "cpu": f"{cpu * 1000 - 90}m",
                    "memory": f"{mem_ki - 700_000}Ki",
                    "pods": "110",
                },
                "conditions": conditions,
                "addresses": [
                    {"type": "InternalIP", "address": internal_ip},
                    {"type": "Hostname", "address": name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": self.hex(32),
                    "systemUUID": self.uid(),
                    "bootID": self.uid(),
                    "kernelVersion": "6.1.0-21-cloud-amd64",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "containerRuntimeVersion": "containerd://1.7.13",
                    "kubeletVersion": "v1.30.4",
                    "kubeProxyVersion": "v1.30.4",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
                "images": images,
            },
        }
        obj["metadata"]["managedFields"] = managed_fields(
            obj, "kubelet", "kubelet", created, heartbeat
        )
        return obj

    # -- workloads -----------------------------------------------------------------------
    def pod_template(
        self, app: str, team: str, labels: dict[str, str], annotations: dict[str, str]
    ) -> Obj:
        """A workload's ``spec.template`` with realistic containers (image digests, env)."""
        registry = self.rng.choice(_REGISTRIES)
        containers: list[Obj] = []
        for index in range(1 if self.rng.random() < 0.85 else 2):
            name = "app" if index == 0 else self.rng.choice(("sidecar", "envoy", "log-shipper"))
            port = self.rng.choice((8080, 8443, 9090, 3000, 5000))
            containers.append(
                {
                    "name": name,
                    "image": f"{registry}/{team}/{app}@sha256:{self.hex(64)}",
                    "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                    "env": [{"name": "RELEASE", "value": self.hex(12)}],
                    "resources": {
                        "limits": {
                            "cpu": f"{self.rng.choice((250, 500, 1000, 2000))}m",
                            "memory": f"{self.rng.choice((256, 512, 1024))}Mi",
                        },
                        "requests": {
                            "cpu": f"{self.rng.choice((50, 100, 250))}m",
                            "memory": f"{self.rng.choice((64, 128, 256))}Mi",
                        },
                    },
                    "imagePullPolicy": "IfNotPresent",
                }
            )
        return {
            "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
            "spec": {
                "containers": containers,
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "serviceAccountName": app,
                "serviceAccount": app,
                "schedulerName": "default-scheduler",
            },
        }

    def pod(
        self,
        *,
        name: str,
        namespace: str,
        template: Obj,
        owner: Obj,
        node: tuple[str, str],
        created_s: float,
        extra_labels: dict[str, str] | None = None,
        generate_name: str | None = None,
        phase: str = "Running",
    ) -> Obj:
        """A Pod made from ``template`` by its controller ``owner``, scheduled to ``node``."""
        created = format_time(created_s)
        started = format_time(created_s + self.rng.randrange(2, 30))
        node_name, host_ip = node
        pod_ip = self.ip("10.244")
        token_volume = f"kube-api-access-{self.suffix()}"
        spec = dict(template["spec"])
        spec["containers"] = [
            {
                **container,
                "volumeMounts": [
                    {
                        "name": token_volume,
                        "readOnly": True,
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    }
                ],
            }
            for container in template["spec"]["containers"]
        ]
        spec.update(
            {
                "nodeName": node_name,
                "priority": 0,
                "volumes": [
                    {
                        "name": token_volume,
                        "projected": {
                            "sources": [
                                {
                                    "serviceAccountToken": {
                                        "expirationSeconds": 3607,
                                        "path": "token",
                                    }
                                }
                            ],
                            "defaultMode": 420,
                        },
                    }
                ],
            }
        )
        running = phase == "Running"
        ready = "True" if running else "False"
        conditions = [
            {"type": kind, "status": status, "lastTransitionTime": stamp}
            for kind, status, stamp in (
                ("Initialized", "True", created),
                ("Ready", ready, started),
                ("ContainersReady", ready, started),
                ("PodScheduled", "True", created),
            )
        ]
        container_statuses = [
            {
                "name": container["name"],
                "state": {"running": {"startedAt": started}}
                if running
                else {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": started,
                        "finishedAt": started,
                        "containerID": f"containerd://{self.hex(64)}",
                    }
                },
                "lastState": {},
                "ready": running,
                "restartCount": 0,
                "image": container["image"].split("@", 1)[0] + ":" + self.hex(7),
                "imageID": container["image"],
                "containerID": f"containerd://{self.hex(64)}",
                "started": running,
            }
            for container in spec["containers"]
        ]
        labels = dict(template["metadata"].get("labels", {}))
        if extra_labels:
            labels.update(extra_labels)
        meta: Obj = {"name": name}
        if generate_name is not None:
            meta["generateName"] = generate_name
        meta.update(
            {
                "namespace": namespace,
                "uid": self.uid(),
                "creationTimestamp": created,
                "labels": labels,
            }
        )
        if template["metadata"].get("annotations"):
            meta["annotations"] = dict(template["metadata"]["annotations"])
        meta["ownerReferences"] = [owner_reference(owner)]
        obj: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": spec,
            "status": {
                "phase": phase,
                "conditions": conditions,
                "hostIP": host_ip,
                "podIP": pod_ip,
                "startTime": created,
                "containerStatuses": container_statuses,
                "qosClass": "Burstable",
            },
        }
        meta["managedFields"] = managed_fields(
            obj, "kube-controller-manager", "kubelet", created, started
        )
        return obj

    def bump_pod_status(self, pod: Obj, now_s: float) -> Obj:
        """A status change the kubelet would make: readiness flip or a container restart."""
        now = format_time(now_s)
        self.bump_status(pod.setdefault("status", {}), now)
        for entry in pod.get("metadata", {}).get("managedFields", []):
            if entry.get("subresource") == "status":
                entry["time"] = now
        return pod

    def bump_status(self, status: Obj, now: str) -> None:
        """The status part of :meth:`bump_pod_status`, in place (the managedFields time is
        the caller's: churn edits the stored status without decoding the whole Pod)."""
        statuses = status.get("containerStatuses") or []
        if statuses and self.rng.random() < 0.5:
            victim = self.rng.choice(statuses)
            victim["restartCount"] = int(victim.get("restartCount", 0)) + 1
            victim["lastState"] = {
                "terminated": {
                    "exitCode": self.rng.choice((1, 137, 143)),
                    "reason": self.rng.choice(("Error", "OOMKilled")),
                    "startedAt": victim.get("state", {}).get("running", {}).get("startedAt", now),
                    "finishedAt": now,
                    "containerID": victim.get("containerID", ""),
                }
            }
            victim["containerID"] = f"containerd://{self.hex(64)}"
            victim["state"] = {"running": {"startedAt": now}}
        else:
            ready = not all(s.get("ready", False) for s in statuses) if statuses else True
            for container_status in statuses:
                container_status["ready"] = ready
            for condition in status.get("conditions", []):
                if condition.get("type") in ("Ready", "ContainersReady"):
                    condition["status"] = "True" if ready else "False"
                    condition["lastTransitionTime"] = now


def owner_reference(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


# Cached, like the Pod names below: seeding a Random from a string on every Deployment
# scale was a churn hot spot.
@functools.lru_cache(maxsize=1 << 16)
def template_hash(rng_source: str) -> str:
    """A deterministic pod-template-hash (10 chars of the name alphabet)."""
    return _seeded_name(rng_source, 10)


def replica_set_name(deployment: Obj) -> str:
    """Name of the Deployment's current ReplicaSet (hash of uid + revision)."""
    meta = deployment["metadata"]
    revision = meta.get("annotations", {}).get("deployment.kubernetes.io/revision", "1")
    return f"{meta['name']}-{template_hash(meta['uid'] + '/' + revision)}"


def replica_pod_name(replica_set: Obj, index: int) -> str:
    """Name of the ReplicaSet's ``index``-th Pod: deterministic, so scaling can find it."""
    suffix = _replica_pod_suffix(replica_set["metadata"]["uid"], index)
    return f"{replica_set['metadata']['name']}-{suffix}"


@functools.lru_cache(maxsize=1 << 17)
def _replica_pod_suffix(uid: str, index: int) -> str:
    return _seeded_name(f"{uid}/{index}", 5)


def _seeded_name(rng_source: str, length: int) -> str:
    return _random_name(random.Random(rng_source), length)


class ClusterGenerator:
    """The initial objects of one cluster, owners before what they own."""

    def __init__(self, cluster: str, seed: int, total: int, with_widget_crd: bool) -> None:
        self.cluster = cluster
        self.total = total
        self.with_widget_crd = with_widget_crd
        self.rng = random.Random(f"{seed}/{cluster}")
        self.make = ObjectFactory(self.rng)
        self.nodes: list[tuple[str, str]] = []

    def objects(self) -> Iterator[Obj]:
        """Exactly ``total`` objects (a prefix of an endless stream of applications)."""
        return itertools.islice(self._stream(), self.total)

    def _stream(self) -> Iterator[Obj]:
        rng = self.rng
        app_namespaces = max(1, min(60, self.total // 150))
        teams = list(_TEAMS)
        rng.shuffle(teams)
        namespaces = [
            f"{teams[i % len(teams)]}-{_ENVS[(i // len(teams)) % len(_ENVS)]}"
            for i in range(app_namespaces)
        ]
        if app_namespaces > len(teams) * len(_ENVS):
            namespaces = [f"{n}-{i}" for i, n in enumerate(namespaces)]
        for name in ("default", "kube-system", *namespaces):
            yield self.make.namespace(name, self.make.past(400 * 86400))
        node_count = max(2, min(40, self.total // 300 + 2))
        for index in range(node_count):
            internal_ip = f"10.0.{index // 250}.{index % 250 + 4}"
            name = f"ip-{internal_ip.replace('.', '-')}.ec2.internal"
            self.nodes.append((name, internal_ip))
            yield self.make.node(name, self.make.past(90 * 86400), internal_ip)
        yield from self._daemon_set("kube-system", "kube-proxy", "kube-proxy")
        if self.with_widget_crd:
            yield _as_crd_object(kinds.WIDGET, self.make)
        sequence = 0
        while True:
            for namespace in namespaces:
                sequence += 1
                yield from self._application(namespace, sequence)

    # -- applications --------------------------------------------------------------------
    def _names(self, namespace: str, sequence: int) -> tuple[str, str]:
        team = namespace.split("-", 1)[0]
        role = self.rng.choice(_ROLES)
        return team, f"{team}-{role}-{sequence}"

    def _moniker(self, app: str, team: str, kind: str) -> dict[str, str]:
        if self.rng.random() >= 0.5:
            return {}
        stack = self.rng.choice(_STACKS)
        detail = self.rng.choice(("", "v2", "east", "batch"))
        moniker = {
            SPINNAKER_APP: team,
            SPINNAKER_CLUSTER: f"{kind.lower()} {app}",
            SPINNAKER_STACK: stack,
        }
        if detail:
            moniker[SPINNAKER_DETAIL] = detail
        return moniker

    def _application(self, namespace: str, sequence: int) -> Iterator[Obj]:
        roll = self.rng.random()
        if roll < 0.72:
            yield from self._deployment_app(namespace, sequence)
        elif roll < 0.84:
            yield from self._stateful_app(namespace, sequence)
        elif roll < 0.94:
            yield from self._job(namespace, sequence)
        else:
            team, name = self._names(namespace, sequence)
            yield from self._config_and_secrets(namespace, name, team, {})
        if self.with_widget_crd and self.rng.random() < 0.2:
            yield self._widget(namespace, sequence)

    def _workload(
        self,
        kind: str,
        api_version: str,
        namespace: str,
        name: str,
        created_s: float,
        labels: dict[str, str],
        annotations: dict[str, str],
        spec: Obj,
        status: Obj,
    ) -> Obj:
        created = format_time(created_s)
        obj: Obj = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": self.make.uid(),
                "generation": self.rng.randrange(1, 12),
                "creationTimestamp": created,
                "labels": labels,
            },
            "spec": spec,
            "status": status,
        }
        if annotations:
            obj["metadata"]["annotations"] = annotations
        manager = (
            "spinnaker"
            if SPINNAKER_APP in annotations
            else self.rng.choice(("helm", "kubectl-client-side-apply", "argocd-controller"))
        )
        obj["metadata"]["managedFields"] = managed_fields(
            obj,
            manager,
            "kube-controller-manager",
            created,
            format_time(created_s + self.rng.randrange(5, 86400)),
        )
        return obj

    def _deployment_app(self, namespace: str, sequence: int) -> Iterator[Obj]:
        make = self.make
        team, app = self._names(namespace, sequence)
        created_s = make.past(200 * 86400)
        replicas = self.rng.choice((1, 1, 2, 2, 3, 3, 4, 6))
        moniker = self._moniker(app, team, "Deployment")
        labels = {
            "app": app,
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/part-of": team,
            "team": team,
        }
        template = make.pod_template(app, team, {"app": app, "team": team}, moniker)
        revision = self.rng.randrange(1, 8)
        deployment = self._workload(
            "Deployment",
            "apps/v1",
            namespace,
            app,
            created_s,
            labels,
            {**moniker, "deployment.kubernetes.io/revision": str(revision)},
            {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app}},
                "template": template,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            deployment_status(replicas, created_s),
        )
        yield from self._config_and_secrets(namespace, app, team, moniker)
        yield deployment
        if revision > 1 and self.rng.random() < 0.5:
            old = dict(deployment)
            old["metadata"] = {
                **deployment["metadata"],
                "annotations": {"deployment.kubernetes.io/revision": str(revision - 1)},
            }
            yield self.replica_set(old, replicas=0, created_s=created_s + 60)
        replica_set = self.replica_set(deployment, replicas=replicas, created_s=created_s + 3600)
        yield replica_set
        for index in range(replicas):
            yield self.replica_pod(replica_set, index, created_s + 3700 + index)
        yield self._service(namespace, app, labels, moniker, created_s)
        if self.rng.random() < 0.25:
            yield self._ingress(namespace, app, labels, created_s)

    def replica_set(self, deployment: Obj, replicas: int, created_s: float) -> Obj:
        """The Deployment's ReplicaSet for its current revision annotation."""
        meta = deployment["metadata"]
        revision = meta.get("annotations", {}).get("deployment.kubernetes.io/revision", "1")
        pod_hash = template_hash(meta["uid"] + "/" + revision)
        template = deployment["spec"]["template"]
        template = {
            "metadata": {
                **template["metadata"],
                "labels": {**template["metadata"]["labels"], "pod-template-hash": pod_hash},
            },
            "spec": template["spec"],
        }
        annotations = {
            k: v for k, v in meta.get("annotations", {}).items() if k.startswith("moniker.")
        }
        annotations.update(
            {
                "deployment.kubernetes.io/desired-replicas": str(replicas),
                "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                "deployment.kubernetes.io/revision": revision,
            }
        )
        obj = self._workload(
            "ReplicaSet",
            "apps/v1",
            meta["namespace"],
            replica_set_name(deployment),
            created_s,
            {**meta.get("labels", {}), "pod-template-hash": pod_hash},
            annotations,
            {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": meta["name"], "pod-template-hash": pod_hash}},
                "template": template,
            },
            {
                "replicas": replicas,
                "fullyLabeledReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "observedGeneration": 1,
            },
        )
        obj["metadata"]["ownerReferences"] = [owner_reference(deployment)]
        return obj

    def replica_pod(self, replica_set: Obj, index: int, created_s: float) -> Obj:
        """The ReplicaSet's ``index``-th Pod (see :func:`replica_pod_name`)."""
        return self.make.pod(
            name=replica_pod_name(replica_set, index),
            generate_name=replica_set["metadata"]["name"] + "-",
            namespace=replica_set["metadata"]["namespace"],
            template=replica_set["spec"]["template"],
            owner=replica_set,
            node=self.rng.choice(self.nodes),
            created_s=created_s,
        )

    def _stateful_app(self, namespace: str, sequence: int) -> Iterator[Obj]:
        make = self.make
        team, base = self._names(namespace, sequence)
        app = base.replace(
            base.split("-")[1], self.rng.choice(("db", "kafka", "redis", "zookeeper", "etcd")), 1
        )
        created_s = make.past(300 * 86400)
        replicas = self.rng.choice((1, 3, 3, 5))
        moniker = self._moniker(app, team, "StatefulSet")
        labels = {"app": app, "team": team}
        template = make.pod_template(app, team, labels, moniker)
        revision = f"{app}-{make.hex(10)}"
        sts = self._workload(
            "StatefulSet",
            "apps/v1",
            namespace,
            app,
            created_s,
            labels,
            moniker,
            {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app}},
                "serviceName": app,
                "template": template,
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {
                                "requests": {"storage": f"{self.rng.choice((10, 50, 200))}Gi"}
                            },
                        },
                    }
                ],
            },
            {
                "replicas": replicas,
                "readyReplicas": replicas,
                "currentReplicas": replicas,
                "updatedReplicas": replicas,
                "currentRevision": revision,
                "updateRevision": revision,
                "observedGeneration": 1,
                "availableReplicas": replicas,
            },
        )
        yield from self._config_and_secrets(namespace, app, team, moniker)
        yield sts
        for index in range(replicas):
            yield make.pod(
                name=f"{app}-{index}",
                namespace=namespace,
                template=template,
                owner=sts,
                node=self.rng.choice(self.nodes),
                created_s=created_s + 60 * index,
                extra_labels={
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": f"{app}-{index}",
                    "apps.kubernetes.io/pod-index": str(index),
                },
            )
        yield self._service(namespace, app, labels, moniker, created_s, headless=True)

    def _daemon_set(self, namespace: str, app: str, team: str) -> Iterator[Obj]:
        make = self.make
        created_s = make.past(90 * 86400)
        labels = {"k8s-app": app}
        template = make.pod_template(app, team, labels, {})
        count = len(self.nodes)
        ds = self._workload(
            "DaemonSet",
            "apps/v1",
            namespace,
            app,
            created_s,
            labels,
            {"deprecated.daemonset.template.generation": "1"},
            {
                "selector": {"matchLabels": labels},
                "template": template,
                "updateStrategy": {"type": "RollingUpdate"},
            },
            {
                "currentNumberScheduled": count,
                "desiredNumberScheduled": count,
                "numberAvailable": count,
                "numberReady": count,
                "updatedNumberScheduled": count,
                "observedGeneration": 1,
                "numberMisscheduled": 0,
            },
        )
        yield ds
        for node in self.nodes:
            yield make.pod(
                name=f"{app}-{make.suffix()}",
                generate_name=f"{app}-",
                namespace=namespace,
                template=template,
                owner=ds,
                node=node,
                created_s=created_s + 5,
                extra_labels={
                    "controller-revision-hash": make.hex(10),
                    "pod-template-generation": "1",
                },
            )

    def _job(self, namespace: str, sequence: int) -> Iterator[Obj]:
        make = self.make
        team, base = self._names(namespace, sequence)
        app = f"{base}-migrate-{make.hex(6)}"
        created_s = make.past(30 * 86400)
        moniker = self._moniker(app, team, "Job")
        controller_uid = make.uid()
        labels = {
            "batch.kubernetes.io/controller-uid": controller_uid,
            "batch.kubernetes.io/job-name": app,
            "controller-uid": controller_uid,
            "job-name": app,
        }
        template = make.pod_template(app, team, labels, moniker)
        template["spec"]["restartPolicy"] = "Never"
        done = format_time(created_s + 40)
        job = self._workload(
            "Job",
            "batch/v1",
            namespace,
            app,
            created_s,
            {"team": team, **labels},
            moniker,
            {
                "parallelism": 1,
                "completions": 1,
                "backoffLimit": 6,
                "completionMode": "NonIndexed",
                "suspend": False,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": controller_uid}},
                "template": template,
            },
            {
                "conditions": [
                    {
                        "type": "Complete",
                        "status": "True",
                        "lastProbeTime": done,
                        "lastTransitionTime": done,
                    }
                ],
                "startTime": format_time(created_s),
                "completionTime": done,
                "succeeded": 1,
                "ready": 0,
            },
        )
        job["metadata"]["uid"] = controller_uid
        yield job
        yield make.pod(
            name=f"{app}-{make.suffix()}",
            generate_name=f"{app}-",
            namespace=namespace,
            template=template,
            owner=job,
            node=self.rng.choice(self.nodes),
            created_s=created_s + 1,
            phase="Succeeded",
        )

    def _config_and_secrets(
        self, namespace: str, app: str, team: str, moniker: dict[str, str]
    ) -> Iterator[Obj]:
        make = self.make
        created_s = make.past(200 * 86400)
        created = format_time(created_s)
        for version in range(self.rng.choice((1, 1, 2))):
            lines = [
                f"service.name: {app}",
                f"service.team: {team}",
                f"database.url: postgres://{app}.{namespace}.svc:5432/{team}",
                f"cache.ttl: {self.rng.randrange(10, 3600)}s",
                f"feature.flags: {','.join(self.rng.sample(('a', 'b', 'c', 'd', 'e', 'f'), 3))}",
                f"build.commit: {make.hex(40)}",
            ] + [f"tuning.k{i}: {self.rng.random():.6f}" for i in range(self.rng.randrange(2, 20))]
            annotations = dict(moniker)
            name = f"{app}-config" if version == 0 else f"{app}-config-{version}"
            if moniker:
                annotations[SPINNAKER_SEQUENCE] = str(version)
                name = f"{app}-config-v{version:03d}"
            cm: Obj = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": make.uid(),
                    "creationTimestamp": created,
                    "labels": {"app": app, "team": team},
                },
                "data": {"application.yaml": "\n".join(lines) + "\n", "LOG_FORMAT": "json"},
            }
            if annotations:
                cm["metadata"]["annotations"] = annotations
            cm["metadata"]["managedFields"] = managed_fields(
                cm, "spinnaker" if moniker else "helm", None, created, created
            )
            yield cm
        if self.rng.random() < 0.5:
            tls = self.rng.random() < 0.3
            data = (
                {
                    "tls.crt": _b64(self.rng.randbytes(self.rng.randrange(900, 1400))),
                    "tls.key": _b64(self.rng.randbytes(self.rng.randrange(220, 260))),
                }
                if tls
                else {
                    key: _b64(self.rng.randbytes(self.rng.randrange(12, 48)))
                    for key in ("username", "password", "api-key")[: self.rng.randrange(1, 4)]
                }
            )
            secret: Obj = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": f"{app}-{'tls' if tls else 'credentials'}",
                    "namespace": namespace,
                    "uid": make.uid(),
                    "creationTimestamp": created,
                    "labels": {"app": app},
                },
                "data": data,
                "type": "kubernetes.io/tls" if tls else "Opaque",
            }
            secret["metadata"]["managedFields"] = managed_fields(
                secret, "helm", None, created, created
            )
            yield secret

    def _service(
        self,
        namespace: str,
        app: str,
        labels: dict[str, str],
        moniker: dict[str, str],
        created_s: float,
        headless: bool = False,
    ) -> Obj:
        make = self.make
        created = format_time(created_s)
        cluster_ip = "None" if headless else make.ip("10.96")
        svc: Obj = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": app,
                "namespace": namespace,
                "uid": make.uid(),
                "creationTimestamp": created,
                "labels": dict(labels),
            },
            "spec": {
                "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"}],
                "selector": {"app": app},
                "clusterIP": cluster_ip,
                "clusterIPs": [cluster_ip],
                "type": "ClusterIP",
                "sessionAffinity": "None",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
            },
            "status": {"loadBalancer": {}},
        }
        if moniker:
            svc["metadata"]["annotations"] = dict(moniker)
        svc["metadata"]["managedFields"] = managed_fields(
            svc, "spinnaker" if moniker else "helm", None, created, created
        )
        return svc

    def _ingress(self, namespace: str, app: str, labels: dict[str, str], created_s: float) -> Obj:
        make = self.make
        created = format_time(created_s)
        ing: Obj = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": app,
                "namespace": namespace,
                "uid": make.uid(),
                "generation": 1,
                "creationTimestamp": created,
                "labels": dict(labels),
                "annotations": {
                    "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
                    "cert-manager.io/cluster-issuer": "letsencrypt",
                },
            },
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": [f"{app}.{namespace}.example.com"], "secretName": f"{app}-tls"}],
                "rules": [
                    {
                        "host": f"{app}.{namespace}.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": app, "port": {"name": "http"}}},
                                }
                            ]
                        },
                    }
                ],
            },
            "status": {
                "loadBalancer": {
                    "ingress": [
                        {"hostname": f"a{make.hex(31)}-{make.hex(16)}.elb.us-east-1.amazonaws.com"}
                    ]
                }
            },
        }
        ing["metadata"]["managedFields"] = managed_fields(
            ing, "helm", "nginx-ingress-controller", created, created
        )
        return ing

    def _widget(self, namespace: str, sequence: int) -> Obj:
        make = self.make
        created = format_time(make.past(60 * 86400))
        widget: Obj = {
            "apiVersion": kinds.WIDGET.api_version,
            "kind": kinds.WIDGET.kind,
            "metadata": {
                "name": f"widget-{sequence}-{make.suffix()}",
                "namespace": namespace,
                "uid": make.uid(),
                "generation": 1,
                "creationTimestamp": created,
                "labels": {"widget-size": self.rng.choice(("small", "medium", "large"))},
            },
            "spec": {
                "color": self.rng.choice(("red", "green", "blue")),
                "size": self.rng.randrange(1, 100),
                "owner": make.uid(),
            },
            "status": {"observedGeneration": 1, "phase": self.rng.choice(("Ready", "Pending"))},
        }
        widget["metadata"]["managedFields"] = managed_fields(
            widget, "widget-operator", "widget-operator", created, created
        )
        return widget


def deployment_status(replicas: int, created_s: float) -> Obj:
    """A settled Deployment status for ``replicas``."""
    stamp = format_time(created_s + 3700)
    return {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
                "reason": "NewReplicaSetAvailable",
                "message": "ReplicaSet has successfully progressed.",
            },
        ],
    }


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _as_crd_object(spec: kinds.KindSpec, make: ObjectFactory) -> Obj:
    crd = kinds.crd_object(spec)
    crd["metadata"]["uid"] = make.uid()
    crd["metadata"]["creationTimestamp"] = format_time(make.past(100 * 86400))
    return crd
