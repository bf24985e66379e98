"""Lift the fields consumers index on out of a Kubernetes object, so they travel in
the record header and consumers never decode the body. Pure code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MONIKER_APP = "moniker.spinnaker.io/application"


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def owners_of(obj: Mapping[str, Any]) -> tuple[str, ...]:
    meta = obj.get("metadata") or {}
    return tuple(str(o.get("uid", "")) for o in meta.get("ownerReferences") or () if o.get("uid"))


def app_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return str(annotations.get(MONIKER_APP, ""))
