"""Edits of a stored object's JSON without decoding all of it.

Churn changes a few fields of objects of a few KiB: decoding and re-encoding the
whole object was most of the simulator's CPU at 10,000 changes/s. The stored bytes
are orjson's compact output of a dict whose metadata the cluster wrote first and
ordered itself (name, generateName, namespace, uid, then resourceVersion), so the
layout is known. Every position found by searching is then proven by what follows
it (nothing nested before a key; a slice that decodes as one whole JSON value).
When a proof fails (an object a client shaped unusually) these functions return
None and the caller decodes and re-encodes the whole object; when they succeed the
bytes are exactly what that path writes, since orjson round-trips its own output.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

Obj = dict[str, Any]

_METADATA = b'{"metadata":{'
_META_AT = len(_METADATA) - 1  # where the metadata object starts
_MANAGED_KEY = b',"managedFields":['
_STATUS_KEY = b',"status":{'


def with_resource_version(body: bytes, old_rv: str, new_rv: str) -> bytes | None:
    """``body`` with ``metadata.resourceVersion`` ``old_rv`` replaced by ``new_rv`` (both from
    encode_rv, so the same length), or None if it is not where the cluster puts it."""
    at = body.find(b'"resourceVersion":"' + old_rv.encode() + b'"')
    if at < 0 or not body.startswith(_METADATA):
        return None
    # Only the identity fields come before it. With no '{' or '[' in between nothing is
    # nested, so this is the metadata's own key (a '"' inside a string is escaped).
    if body.find(b"{", _META_AT + 1, at) >= 0 or body.find(b"[", _META_AT + 1, at) >= 0:
        return None
    start = at + len(b'"resourceVersion":"')
    return body[:start] + new_rv.encode() + body[start + len(old_rv) :]


class StatusParts(NamedTuple):
    """A stored object cut for a status write: the metadata and the status decoded (edit
    them in place), everything between them (the spec, usually) left as bytes."""

    metadata: Obj
    middle: bytes
    status: Obj


def split_status(body: bytes) -> StatusParts | None:
    """Cut ``body`` for a status write, or None unless status is the object's last field and
    the metadata ends with managedFields (as the generator and the real server write them)."""
    managed_at = body.find(_MANAGED_KEY, _META_AT)
    status_at = body.rfind(_STATUS_KEY)
    if managed_at < 0 or status_at < managed_at or not body.startswith(_METADATA):
        return None
    # Managed-fields entries hold no arrays, so the first ']},"' after them is where the
    # metadata ends. Decoding proves the guess: a slice from the metadata's '{' that is one
    # whole JSON value ends exactly where the metadata ends.
    meta_end = body.find(b']},"', managed_at, status_at + 2) + 2
    if meta_end < 2 or body[-1:] != b"}":
        return None
    try:
        metadata = orjson.loads(body[_META_AT:meta_end])
        # A ',"status":{' inside another value would leave its closing brackets in here.
        status = orjson.loads(body[status_at + len(_STATUS_KEY) - 1 : -1])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(metadata, dict) or not isinstance(status, dict):
        return None
    return StatusParts(metadata, body[meta_end:status_at], status)


_SPEC_REPLICAS = b',"spec":{"replicas":'


def spec_replicas(middle: bytes) -> tuple[int, int] | None:
    """(spec.replicas, where its digits end) when ``middle`` of :func:`split_status` starts
    with the spec and its first field is an integer ``replicas`` (as workloads are written),
    else None. The middle starts where the metadata ends, so this is the object's own spec."""
    if not middle.startswith(_SPEC_REPLICAS):
        return None
    start = end = len(_SPEC_REPLICAS)
    while middle[end : end + 1].isdigit():
        end += 1
    if end == start or middle[end : end + 1] not in (b",", b"}"):
        return None
    return int(middle[start:end]), end


def with_spec_replicas(middle: bytes, end: int, replicas: int) -> bytes:
    """``middle`` with the spec.replicas that :func:`spec_replicas` found set to ``replicas``."""
    return _SPEC_REPLICAS + str(replicas).encode() + middle[end:]


def join_status(parts: StatusParts) -> bytes:
    """The body of ``parts`` after the caller's edits."""
    return b"".join(
        (
            _METADATA[:-1],
            orjson.dumps(parts.metadata),
            parts.middle,
            _STATUS_KEY[:-1],
            orjson.dumps(parts.status),
            b"}",
        )
    )


__all__ = [
    "StatusParts",
    "join_status",
    "spec_replicas",
    "split_status",
    "with_resource_version",
    "with_spec_replicas",
]
