"""Background changes at a steady rate: new Pods and ConfigMaps, Pod status updates,
Deployment scales (which also update the ReplicaSet and create or delete its Pods)
and deletions, spread uniformly over the chosen clusters.

The rate counts object changes (watch events), not operations: a scale that touches
a Deployment, its ReplicaSet and two Pods uses four units of the budget. Split into
a testable pass (:meth:`ChurnDriver.step`, no clock) and a thin loop (:meth:`run`).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from simulator.cluster import ClusterState
from simulator.config import ChurnMix
from simulator.errors import AlreadyExistsError, ObjectNotFoundError
from simulator.generator import (
    ObjectFactory,
    below,
    format_time,
    managed_fields,
    replica_pod_name,
    replica_set_name,
)

Obj = dict[str, Any]
_MAX_IDLE_ATTEMPTS = 20  #: changes in a row that found nothing to change before a step gives up


class ChurnDriver:
    """Makes ``rate_per_s`` changes per second across ``clusters``."""

    def __init__(
        self,
        clusters: Sequence[ClusterState],
        *,
        rate_per_s: float,
        mix: ChurnMix,
        rng: random.Random,
        max_burst_s: float = 1.0,
    ) -> None:
        if rate_per_s < 0:
            raise ValueError("rate_per_s must be >= 0")
        self.clusters = list(clusters)
        self.rate_per_s = rate_per_s
        self.rng = rng
        self.make = ObjectFactory(rng)
        #: Budget carried between ticks is capped at this many seconds' worth, so a
        #: stalled loop does not answer with a storm.
        self.max_burst_s = max_burst_s
        self.budget = 0.0
        self.changes = 0  #: object changes (watch events) made so far
        #: (cluster, node) -> InternalIP: new Pods need their node's address, and
        #: decoding a whole Node (kilobytes of images and conditions) per Pod was costly.
        self._node_ips: dict[tuple[str, str], str] = {}
        self.operations: Counter[str] = Counter()
        ops: list[tuple[float, Callable[[ClusterState], int]]] = [
            (mix.creates, self.create),
            (mix.pod_status_updates, self.update_pod_status),
            (mix.deployment_scales, self.scale_deployment),
            (mix.deletes, self.delete),
        ]
        self._ops = [op for weight, op in ops if weight > 0]
        self._cum_weights = list(itertools.accumulate(weight for weight, _ in ops if weight > 0))

    # -- the testable pass ------------------------------------------------------------------
    def step(self, elapsed_s: float, slice_s: float | None = None) -> int:
        """Make the changes due after ``elapsed_s`` more seconds; returns how many.

        With ``slice_s``, stop once that much time went into changes (checked every few
        changes): what is left of the budget waits for the next call."""
        cap = max(1.0, self.rate_per_s * self.max_burst_s)
        self.budget = min(self.budget + self.rate_per_s * elapsed_s, cap)
        deadline = None if slice_s is None else time.perf_counter() + slice_s
        made = 0
        ops = 0  #: changes made in this call (a scale counts once): the clock is read every 16
        idle = 0
        rng = self.rng
        cum_weights = self._cum_weights
        total = cum_weights[-1] + 0.0
        last = len(cum_weights) - 1
        while self.budget >= 1.0 and self.clusters:
            cluster = self.clusters[below(rng, len(self.clusters))]
            # rng.choices(self._ops, cum_weights=...)[0] inline: the same draw and pick,
            # without building a list per change.
            op = self._ops[bisect.bisect(cum_weights, rng.random() * total, 0, last)]
            try:
                changed = op(cluster)
            except (AlreadyExistsError, ObjectNotFoundError):
                changed = 0  # a random name collided or an object vanished: try another
            if changed == 0:
                idle += 1
                if idle >= _MAX_IDLE_ATTEMPTS:
                    break
                continue
            idle = 0
            self.operations[op.__name__] += 1
            self.budget -= changed
            made += changed
            ops += 1
            if deadline is not None and ops % 16 == 0 and time.perf_counter() >= deadline:
                break
        self.changes += made
        return made

    async def run(self, tick_s: float = 0.02, slice_s: float = 0.02) -> None:
        """Step every ``tick_s`` seconds until cancelled, yielding to the event loop after
        every ``slice_s`` of changes.

        The API and the watch streams share this loop. When the machine was too slow for
        the rate, the budget grew to ``max_burst_s`` worth and one step made all of it:
        at 10,000 changes/s up to ~1 s during which no request was answered and no watch
        event written (probe creates took ~0.8 s), then a burst of events. A real API
        server keeps serving while its clients write; now the simulator does too, and a
        rate it cannot reach shows as fewer changes per second, not as stalls. A slice as
        long as the tick leaves a simulator that keeps up as it was (a 5 ms slice cost
        ~20 % more CPU per change: each watch stream then wrote a few events at a time)."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(tick_s)
            now = loop.time()
            self.step(now - last, slice_s)
            last = now
            while self.budget >= 1.0 and self.clusters:
                await asyncio.sleep(0)  # requests and watch writes waiting since the slice
                now = loop.time()
                made = self.step(now - last, slice_s)
                last = now  # the budget has that time in it
                if made == 0:
                    break  # nothing left to change (the idle attempts ran out)

    # -- the changes (each returns the number of object changes it made) ---------------------
    def create(self, cluster: ClusterState) -> int:
        if self.rng.random() < 0.7:
            replica_set = cluster.random_object("apps", "ReplicaSet", self.rng)
            node = self._node(cluster)
            if replica_set is not None and node is not None:
                name = replica_set["metadata"]["name"]
                pod = self.make.pod(
                    name=f"{name}-{self.make.suffix()}",
                    generate_name=f"{name}-",
                    namespace=replica_set["metadata"]["namespace"],
                    template=replica_set["spec"]["template"],
                    owner=replica_set,
                    node=node,
                    created_s=time.time(),
                )
                cluster.create_quietly(pod)
                return 1
        namespace = cluster.random_identity("", "Namespace", self.rng)
        if namespace is None:
            return 0
        cluster.create_quietly(self._config_map(namespace[1]))
        return 1

    def update_pod_status(self, cluster: ClusterState) -> int:
        now = format_time(time.time())
        changed = cluster.update_random_status(
            "", "Pod", self.rng, lambda status: self.make.bump_status(status, now), now
        )
        return 1 if changed else 0

    def delete(self, cluster: ClusterState) -> int:
        kind = "Pod" if self.rng.random() < 0.6 else "ConfigMap"
        victim = cluster.random_identity("", kind, self.rng)
        if victim is None:
            return 0
        cluster.delete("", kind, *victim)
        return 1

    def scale_deployment(self, cluster: ClusterState) -> int:
        picked = cluster.random_identity("apps", "Deployment", self.rng)
        if picked is None:
            return 0
        namespace, deployment_name = picked
        now = format_time(time.time())
        old = new = 0
        replica_set_at = ""

        def scale(meta: Obj, replicas: int, status: Obj) -> int:
            nonlocal old, new, replica_set_at
            old = replicas
            new = min(8, max(0, old + self.rng.choice((-2, -1, 1, 2))))
            if new == old:
                new = old + 1
            meta["generation"] = int(meta.get("generation", 1)) + 1
            status.update(
                {
                    "observedGeneration": meta["generation"],
                    "replicas": new,
                    "updatedReplicas": new,
                    "readyReplicas": new,
                    "availableReplicas": new,
                }
            )
            for condition in status.get("conditions", []):
                condition["lastUpdateTime"] = now
            replica_set_at = replica_set_name({"metadata": meta})
            return new

        cluster.update_scale("apps", "Deployment", namespace, deployment_name, scale)
        changed = 1
        replica_set_meta: Obj = {}

        def scale_replica_set(meta: Obj, _replicas: int, status: Obj) -> int:
            nonlocal replica_set_meta
            status.update(
                {
                    "replicas": new,
                    "fullyLabeledReplicas": new,
                    "readyReplicas": new,
                    "availableReplicas": new,
                }
            )
            meta.setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(
                new
            )
            replica_set_meta = meta
            return new

        if new > old:
            # New Pods need the ReplicaSet's template: decode the whole object once.
            replica_set = cluster.get("apps", "ReplicaSet", namespace, replica_set_at)
            if replica_set is None:
                return changed
            replica_set["spec"]["replicas"] = scale_replica_set(
                replica_set["metadata"], 0, replica_set.setdefault("status", {})
            )
            cluster.update_quietly(replica_set)
        else:
            try:
                cluster.update_scale(
                    "apps", "ReplicaSet", namespace, replica_set_at, scale_replica_set
                )
            except ObjectNotFoundError:
                return changed
            replica_set = {"metadata": replica_set_meta}  # what Pod names are made of
        changed += 1
        for index in range(new, old):
            name = replica_pod_name(replica_set, index)
            if cluster.exists("", "Pod", namespace, name):
                cluster.delete("", "Pod", namespace, name)
                changed += 1
        node = self._node(cluster)
        for index in range(old, new):
            name = replica_pod_name(replica_set, index)
            if node is None or cluster.exists("", "Pod", namespace, name):
                continue
            cluster.create_quietly(
                self.make.pod(
                    name=name,
                    generate_name=replica_set["metadata"]["name"] + "-",
                    namespace=namespace,
                    template=replica_set["spec"]["template"],
                    owner=replica_set,
                    node=node,
                    created_s=time.time(),
                )
            )
            changed += 1
        return changed

    # -- helpers ------------------------------------------------------------------------------
    def _node(self, cluster: ClusterState) -> tuple[str, str] | None:
        picked = cluster.random_identity("", "Node", self.rng)
        if picked is None:
            return None
        name = picked[1]
        internal = self._node_ips.get((cluster.name, name))
        if internal is None:
            node = cluster.get("", "Node", "", name)
            addresses = node.get("status", {}).get("addresses", []) if node else []
            internal = next(
                (a["address"] for a in addresses if a.get("type") == "InternalIP"), "10.0.0.1"
            )
            self._node_ips[(cluster.name, name)] = internal
        return name, internal

    def _config_map(self, namespace: str) -> Obj:
        now = format_time(time.time())
        config_map: Obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"churn-{self.make.suffix(10)}",
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "churn"},
            },
            "data": {"token": self.make.hex(64), "generatedAt": now},
        }
        config_map["metadata"]["managedFields"] = managed_fields(
            config_map, "churn", None, now, now
        )
        return config_map


__all__ = ["ChurnDriver"]
