"""Settings of the Kubernetes API simulator and its churn generator."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import SimulatorError


class SimulatorConfigError(SimulatorError, ValueError):
    """A simulator setting that cannot work."""


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How many clusters to simulate, what they hold, and how the API server behaves."""

    #: Cluster names; each is served under ``/clusters/<name>``. DNS-label syntax,
    #: like kubedelta's cluster ids.
    clusters: tuple[str, ...] = ("c1",)
    #: Objects generated per cluster at start (all kinds together, exact count).
    #: Memory is roughly 2 KiB per object, so 1M objects need ~2-3 GiB.
    objects_per_cluster: int = 100
    #: Seed of the object generator: the same seed gives byte-identical clusters.
    seed: int = 1
    #: Watch events kept per cluster (all kinds together) for watch resumption
    #: and exact-resourceVersion LISTs; older ones give 410 Expired, like the real
    #: watch cache. Memory: about 2 object bodies per kept event.
    history_size: int = 1000
    #: Seconds between BOOKMARK events on watches that asked for them. The real
    #: server sends one about every minute; a short interval keeps tests fast.
    bookmark_interval_s: float = 1.0
    #: Server-side timeout of a watch whose client gave no ``timeoutSeconds``, in
    #: seconds; the real server picks a random value in [1800, 3600).
    default_watch_timeout_s: float = 1800.0
    #: Paginated LIST snapshots kept per cluster for ``continue`` tokens; a token
    #: whose snapshot was evicted answers 410 Expired (like a compacted etcd).
    list_snapshots_per_cluster: int = 16
    #: If set, every API request must carry ``Authorization: Bearer <token>``;
    #: None accepts any token or none (the usual test setting).
    required_token: str | None = None
    #: Value of ``Retry-After`` (seconds) on throttled (429) responses.
    retry_after_s: int = 1
    #: Install the ``example.com/v1 Widget`` CRD (with some Widgets) at start.
    with_widget_crd: bool = True
    #: gzip LIST responses above 128 KiB when the client accepts gzip, as the real
    #: server does. Off by default: it costs simulator CPU that benchmarks want
    #: for the system under test.
    compress_responses: bool = False
    #: Also serve this cluster at the root path (``/api``, ``/apis``, ...), as a real API
    #: server is addressed: in-cluster clients (KUBERNETES_SERVICE_HOST/PORT) have no path
    #: prefix. None: clusters only under ``/clusters/<name>``.
    root_cluster: str | None = None
    #: Version reported by ``/version``.
    kubernetes_version: str = "v1.30.4"
    #: Serve aggregated discovery (``apidiscovery.k8s.io/v2``, as Kubernetes >= 1.27):
    #: ``/api`` and ``/apis`` answer every group's resources in one document when the
    #: client asks for it in ``Accept``. False: legacy discovery only, as older servers.
    aggregated_discovery: bool = True

    def __post_init__(self) -> None:
        if not self.clusters:
            raise SimulatorConfigError("at least one cluster is needed")
        if len(set(self.clusters)) != len(self.clusters):
            raise SimulatorConfigError("cluster names must be unique")
        if self.objects_per_cluster < 0:
            raise SimulatorConfigError("objects_per_cluster must be >= 0")
        if self.history_size < 1:
            raise SimulatorConfigError("history_size must be >= 1")
        if self.bookmark_interval_s <= 0 or self.default_watch_timeout_s <= 0:
            raise SimulatorConfigError("intervals and timeouts must be > 0")
        if self.list_snapshots_per_cluster < 1:
            raise SimulatorConfigError("list_snapshots_per_cluster must be >= 1")
        if self.root_cluster is not None and self.root_cluster not in self.clusters:
            raise SimulatorConfigError(
                f"root_cluster {self.root_cluster!r} is not one of the simulated clusters"
            )


@dataclass(frozen=True, slots=True)
class ChurnMix:
    """Relative weights of the change kinds the churn generator makes (need not sum to 1)."""

    #: New Pods (owned by an existing ReplicaSet) and ConfigMaps.
    creates: float = 0.15
    #: Pod status changes: readiness flips, restarts, condition timestamps.
    pod_status_updates: float = 0.6
    #: Deployment replica changes; each also updates the ReplicaSet and
    #: creates or deletes its Pods (several events per scale).
    deployment_scales: float = 0.1
    #: Deletions of Pods and ConfigMaps (balances ``creates``).
    deletes: float = 0.15

    def __post_init__(self) -> None:
        weights = (self.creates, self.pod_status_updates, self.deployment_scales, self.deletes)
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise SimulatorConfigError("churn weights must be >= 0 and not all 0")
