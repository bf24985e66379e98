"""Kubernetes API simulator: the real wire protocol (discovery, paginated LIST, WATCH with
bookmarks and 410s, Status errors) for many simulated clusters on one port, with fault
knobs and churn. The only test double kubedelta allows.

    sim = Simulator(SimulatorConfig(clusters=("c1", "c2"), objects_per_cluster=100, seed=1))
    async with sim.serve() as base_url:
        api = f"{base_url}/clusters/c1"   # kubernetes-asyncio Configuration.host
"""

from simulator.churn import ChurnDriver
from simulator.cluster import ClusterState
from simulator.config import ChurnMix, SimulatorConfig, SimulatorConfigError
from simulator.errors import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    InvalidObjectError,
    ObjectNotFoundError,
    ResourceExpiredError,
    SimulatorError,
    UnknownClusterError,
    UnknownKindError,
)
from simulator.kinds import BUILTIN_KINDS, WIDGET, KindSpec
from simulator.resource_version import decode_rv, encode_rv
from simulator.simulator import Simulator

__all__ = [
    "BUILTIN_KINDS",
    "WIDGET",
    "AlreadyExistsError",
    "BadRequestError",
    "ChurnDriver",
    "ChurnMix",
    "ClusterState",
    "ConflictError",
    "InvalidObjectError",
    "KindSpec",
    "ObjectNotFoundError",
    "ResourceExpiredError",
    "Simulator",
    "SimulatorConfig",
    "SimulatorConfigError",
    "SimulatorError",
    "UnknownClusterError",
    "UnknownKindError",
    "decode_rv",
    "encode_rv",
]
