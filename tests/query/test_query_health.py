"""Spinnaker health by Clouddriver's Kubernetes v2 rules (KubernetesV2Health,
KubernetesModelUtil.getHealthState)."""

from __future__ import annotations

from typing import Any

import pytest

from query.health import (
    HealthState,
    combine,
    container_health,
    count_states,
    pod_health_state,
    pod_healths,
    pod_phase_health,
    workload_status,
)

UP, DOWN, UNKNOWN = HealthState.UP, HealthState.DOWN, HealthState.UNKNOWN
S = HealthState


def pod(phase: str | None, *ready: bool) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if ready:
        status["containerStatuses"] = [
            {"name": f"c{i}", "ready": r, "state": {"running": {}} if r else {"waiting": {}}}
            for i, r in enumerate(ready)
        ]
    return {"kind": "Pod", "metadata": {"name": "p"}, "status": status}


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("Pending", DOWN),
        ("Running", UP),
        ("Succeeded", UNKNOWN),
        ("Failed", UNKNOWN),
        ("Unknown", UNKNOWN),
        ("running", UP),  # Clouddriver compares ignoring case
        (None, UNKNOWN),
        ("Terminating", UNKNOWN),
    ],
)
def test_pod_phase(phase: str | None, expected: HealthState) -> None:
    assert pod_phase_health(phase) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"name": "a", "ready": True}, UP),
        ({"name": "a", "ready": False}, DOWN),
        ({"name": "a"}, DOWN),
        ({"name": "a", "ready": "true"}, DOWN),  # only a JSON true counts
    ],
)
def test_container(status: dict[str, Any], expected: HealthState) -> None:
    assert container_health(status) is expected


@pytest.mark.parametrize(
    ("pod_obj", "expected"),
    [
        (pod("Running", True, True), UP),
        (pod("Running"), UP),
        (pod("Running", True, False), DOWN),  # one container not ready
        (pod("Pending"), DOWN),
        (pod("Pending", False), DOWN),
        (pod("Succeeded", False), DOWN),  # Unknown pod + Down container
        (pod("Succeeded"), UNKNOWN),
        (pod("Failed"), UNKNOWN),
        (pod("Unknown", True), UP),  # only known entry is Up
        (pod(None), UNKNOWN),
    ],
)
def test_pod_state(pod_obj: dict[str, Any], expected: HealthState) -> None:
    assert pod_health_state(pod_obj) is expected


def test_health_entries_shape() -> None:
    entries = [h.to_json() for h in pod_healths(pod("Running", True, False))]
    assert entries == [
        {"state": "Up", "source": "Pod", "type": "kubernetes/pod", "healthClass": "platform"},
        {
            "state": "Up",
            "source": "Container c0",
            "type": "kubernetes/container",
            "healthClass": "platform",
        },
        {
            "state": "Down",
            "source": "Container c1",
            "type": "kubernetes/container",
            "healthClass": "platform",
        },
    ]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], S.UNKNOWN),
        ([S.UNKNOWN], S.UNKNOWN),
        ([S.UP, S.UNKNOWN], S.UP),
        ([S.SUCCEEDED, S.UNKNOWN, S.SUCCEEDED], S.SUCCEEDED),
        ([S.UP, S.SUCCEEDED], S.UNKNOWN),  # mixed: no "any" rule matches Up/Succeeded
        ([S.UP, S.STARTING, S.DOWN], S.STARTING),
        ([S.UP, S.DOWN, S.FAILED], S.DOWN),
        ([S.SUCCEEDED, S.FAILED, S.OUT_OF_SERVICE], S.FAILED),
        ([S.UP, S.OUT_OF_SERVICE], S.OUT_OF_SERVICE),
    ],
)
def test_combine_priority(states: list[HealthState], expected: HealthState) -> None:
    assert combine(states) is expected


def test_counts() -> None:
    counts = count_states([S.UP, S.UP, S.DOWN, S.UNKNOWN]).to_json()
    assert counts["total"] == 4 and counts["up"] == 2 and counts["down"] == 1
    assert counts["unknown"] == 1 and counts["outOfService"] == 0


def deployment(replicas: int, updated: int, available: int, ready: int, gen: int = 1) -> Any:
    return {
        "kind": "Deployment",
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": gen,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "readyReplicas": ready,
        },
    }


def test_workload_stability() -> None:
    assert workload_status(deployment(3, 3, 3, 3)).stable
    rolling = workload_status(deployment(3, 1, 3, 3))
    assert not rolling.stable and "1/3 replicas updated" in rolling.message
    assert not workload_status(deployment(3, 3, 2, 3)).stable
    assert not workload_status(deployment(3, 3, 3, 2)).stable
    assert not workload_status(deployment(3, 3, 3, 3, gen=0)).stable
    assert workload_status(deployment(0, 0, 0, 0)).stable
    daemon = {
        "kind": "DaemonSet",
        "status": {
            "desiredNumberScheduled": 2,
            "updatedNumberScheduled": 2,
            "numberAvailable": 2,
            "numberReady": 1,
        },
    }
    assert not workload_status(daemon).stable
    job = {"kind": "Job", "spec": {"completions": 2}, "status": {"succeeded": 2}}
    assert workload_status(job).stable
    failed = {
        "kind": "Job",
        "status": {"conditions": [{"type": "Failed", "status": "True"}]},
    }
    status = workload_status(failed)
    assert not status.stable and status.failed
