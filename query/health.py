"""Spinnaker health of Pods and workloads, by Clouddriver's Kubernetes (v2) rules. Pure code.

Clouddriver gives an instance (Pod) one health entry for the Pod and one per
container, then folds them into one state (``KubernetesModelUtil.getHealthState``):

* Pod phase ``Pending`` -> Down, ``Running`` -> Up, any other phase -> Unknown.
* Container ``ready`` -> Up, not ready -> Down.
* Folding, first rule that holds: every known (non-Unknown) entry Up -> Up; every
  known entry Succeeded -> Succeeded; any Starting -> Starting; any Down -> Down;
  any Failed -> Failed; any OutOfService -> OutOfService; otherwise Unknown.

A workload is stable when its observed generation is current and its updated,
available and ready replica counts all equal the desired count.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class HealthState(enum.Enum):
    """Clouddriver's HealthState names (they travel as these strings)."""

    UP = "Up"
    SUCCEEDED = "Succeeded"
    STARTING = "Starting"
    DOWN = "Down"
    FAILED = "Failed"
    OUT_OF_SERVICE = "OutOfService"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class Health:
    """One health entry of an instance, shaped like Clouddriver's ``KubernetesV2Health``."""

    state: HealthState
    source: str  #: "Pod" or "Container <name>"
    type: str  #: "kubernetes/pod" or "kubernetes/container"

    def to_json(self) -> dict[str, str]:
        return {
            "state": self.state.value,
            "source": self.source,
            "type": self.type,
            "healthClass": "platform",
        }


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pod_phase_health(phase: object) -> HealthState:
    """Health of the Pod entry from ``status.phase`` (case-insensitive, as Clouddriver)."""
    text = phase.lower() if isinstance(phase, str) else ""
    if text == "pending":
        return HealthState.DOWN
    if text == "running":
        return HealthState.UP
    return HealthState.UNKNOWN


def container_health(container_status: Mapping[str, Any]) -> HealthState:
    """Health of one ``status.containerStatuses[]`` entry: ready -> Up, else Down."""
    return HealthState.UP if container_status.get("ready") is True else HealthState.DOWN


def pod_healths(pod: Mapping[str, Any]) -> list[Health]:
    """The Pod entry followed by one entry per container status."""
    status = _mapping(pod.get("status"))
    healths = [Health(pod_phase_health(status.get("phase")), "Pod", "kubernetes/pod")]
    statuses = status.get("containerStatuses")
    for cs in statuses if isinstance(statuses, list) else ():
        cs_map = _mapping(cs)
        healths.append(
            Health(
                container_health(cs_map),
                f"Container {cs_map.get('name', '')}",
                "kubernetes/container",
            )
        )
    return healths


def combine(states: Iterable[HealthState]) -> HealthState:
    """Fold health entries into one instance state (Clouddriver's priority rules)."""
    all_states = list(states)
    known = [s for s in all_states if s is not HealthState.UNKNOWN]
    if known and all(s is HealthState.UP for s in known):
        return HealthState.UP
    if known and all(s is HealthState.SUCCEEDED for s in known):
        return HealthState.SUCCEEDED
    for state in (
        HealthState.STARTING,
        HealthState.DOWN,
        HealthState.FAILED,
        HealthState.OUT_OF_SERVICE,
    ):
        if state in all_states:
            return state
    return HealthState.UNKNOWN


def pod_health_state(pod: Mapping[str, Any]) -> HealthState:
    return combine(h.state for h in pod_healths(pod))


@dataclass(frozen=True, slots=True)
class InstanceCounts:
    """Clouddriver's ``instanceCounts`` of a server group."""

    total: int = 0
    up: int = 0
    down: int = 0
    starting: int = 0
    succeeded: int = 0
    failed: int = 0
    out_of_service: int = 0
    unknown: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "total": self.total,
            "up": self.up,
            "down": self.down,
            "starting": self.starting,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "outOfService": self.out_of_service,
            "unknown": self.unknown,
        }


def count_states(states: Sequence[HealthState]) -> InstanceCounts:
    def n(state: HealthState) -> int:
        return sum(1 for s in states if s is state)

    return InstanceCounts(
        total=len(states),
        up=n(HealthState.UP),
        down=n(HealthState.DOWN),
        starting=n(HealthState.STARTING),
        succeeded=n(HealthState.SUCCEEDED),
        failed=n(HealthState.FAILED),
        out_of_service=n(HealthState.OUT_OF_SERVICE),
        unknown=n(HealthState.UNKNOWN),
    )


@dataclass(frozen=True, slots=True)
class WorkloadStatus:
    """Rollout state of a workload, shaped like Clouddriver's manifest ``status``."""

    desired: int  #: replicas the spec asks for (DaemonSet: pods it should schedule)
    updated: int  #: replicas on the current template
    available: int  #: replicas available (ready for minReadySeconds)
    ready: int  #: replicas passing readiness
    generation_current: bool  #: the controller has seen the latest spec
    stable: bool
    message: str  #: why not stable ("" when stable)
    failed: bool = False  #: a Job's Failed condition
    paused: bool = False  #: a Deployment's spec.paused

    def to_json(self) -> dict[str, Any]:
        return {
            "stable": {"state": self.stable, "message": self.message or None},
            "available": {"state": self.available >= self.desired},
            "paused": {"state": self.paused},
            "failed": {"state": self.failed},
            "replicas": {
                "desired": self.desired,
                "updated": self.updated,
                "available": self.available,
                "ready": self.ready,
            },
        }


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _condition_true(status: Mapping[str, Any], kind: str) -> bool:
    conditions = status.get("conditions")
    for c in conditions if isinstance(conditions, list) else ():
        cm = _mapping(c)
        if cm.get("type") == kind and cm.get("status") == "True":
            return True
    return False


def workload_status(obj: Mapping[str, Any]) -> WorkloadStatus:
    """Stability of a Deployment, ReplicaSet, StatefulSet, DaemonSet or Job."""
    kind = obj.get("kind")
    meta = _mapping(obj.get("metadata"))
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    generation = _int(meta.get("generation"))
    observed = _int(status.get("observedGeneration"), generation)
    generation_current = observed >= generation
    paused = kind == "Deployment" and spec.get("paused") is True
    if kind == "Job":
        completions = _int(spec.get("completions"), 1)
        succeeded = _int(status.get("succeeded"))
        failed = _condition_true(status, "Failed")
        complete = _condition_true(status, "Complete") or succeeded >= completions
        message = "" if complete else ("job failed" if failed else "job has not completed")
        return WorkloadStatus(
            desired=completions,
            updated=succeeded,
            available=succeeded,
            ready=succeeded,
            generation_current=True,
            stable=complete,
            message=message,
            failed=failed,
        )
    if kind == "DaemonSet":
        desired = _int(status.get("desiredNumberScheduled"))
        updated = _int(status.get("updatedNumberScheduled"))
        available = _int(status.get("numberAvailable"))
        ready = _int(status.get("numberReady"))
    else:
        desired = _int(spec.get("replicas"), 1)
        ready = _int(status.get("readyReplicas"))
        available = _int(status.get("availableReplicas"))
        # A bare ReplicaSet has no updatedReplicas: every pod it has is on its template.
        updated_field = "fullyLabeledReplicas" if kind == "ReplicaSet" else "updatedReplicas"
        updated = _int(status.get(updated_field), _int(status.get("replicas")))
    reasons = []
    if not generation_current:
        reasons.append("waiting for the controller to observe the latest generation")
    for label, value in (("updated", updated), ("available", available), ("ready", ready)):
        if value != desired:
            reasons.append(f"{value}/{desired} replicas {label}")
    return WorkloadStatus(
        desired=desired,
        updated=updated,
        available=available,
        ready=ready,
        generation_current=generation_current,
        stable=not reasons,
        message="; ".join(reasons),
        paused=paused,
    )
