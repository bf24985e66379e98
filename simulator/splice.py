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
    start = _proven_rv_at(body, old_rv)
    if start is None:
        return None
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


class StatusSplice(NamedTuple):
    """Where the next status write changes a body :func:`join_status_marked` joined:
    proven when it was joined, and only for that very bytes object (``body``: compare
    with ``is``). The edits keep everything else byte for byte, so the result is what
    decoding, editing and :func:`join_status` would give (orjson is deterministic and
    round-trips its own output)."""

    body: bytes
    rv_at: int  #: where metadata.resourceVersion's value starts
    rv_len: int
    time_ats: tuple[int, ...]  #: where each status manager's ``time`` value starts
    time_len: int
    status_at: int  #: where ``,"status":`` starts: the object's last field

    def status(self) -> Obj:
        """The status, decoded (to edit before :meth:`write`)."""
        status: Obj = orjson.loads(self.body[self.status_at + len(_STATUS_FIELD) : -1])
        return status

    def write(self, rv: str, manager_time: str, status: Obj) -> StatusSplice:
        """The body with a new resourceVersion, status managers' time and status."""
        body = self.body
        new_rv, new_time = rv.encode(), manager_time.encode()
        pieces = [body[: self.rv_at], new_rv]
        at = self.rv_at + self.rv_len
        shift = len(new_rv) - self.rv_len
        time_ats = []
        for time_at in self.time_ats:
            pieces += (body[at:time_at], new_time)
            at = time_at + self.time_len
            time_ats.append(time_at + shift)
            shift += len(new_time) - self.time_len
        pieces += (body[at : self.status_at], _STATUS_FIELD, orjson.dumps(status), b"}")
        return StatusSplice(
            b"".join(pieces),
            self.rv_at,
            len(new_rv),
            tuple(time_ats),
            len(new_time),
            self.status_at + shift,
        )


_STATUS_FIELD = _STATUS_KEY[:-1]  # ,"status":


def time_mark(length: int) -> str:
    """A stand-in for a status manager's time while the metadata is encoded, found
    afterwards to learn where the time goes (DEL characters: orjson writes them as they
    are, and no real timestamp holds one)."""
    return "\x7f" * length


def join_status_marked(
    parts: StatusParts, rv: str, manager_time: str, marked: list[Obj]
) -> tuple[bytes, StatusSplice | None]:
    """:func:`join_status` of ``parts`` whose status managers ``marked`` (managedFields
    entries of its metadata) hold ``time_mark(len(manager_time))`` as their time and
    whose resourceVersion is ``rv``: the body with ``manager_time`` in their place, and
    where the next status write changes it (None when the marks or the resourceVersion
    cannot be told apart from the object's other content: the body is right, the next
    write decodes again)."""
    mark = time_mark(len(manager_time)).encode()
    metadata = orjson.dumps(parts.metadata)
    marks = []  # where the marks start in ``metadata``
    at = metadata.find(mark)
    while at >= 0:
        marks.append(at)
        at = metadata.find(mark, at + len(mark))
    if len(marks) != len(marked):
        # The object holds the mark somewhere else too: which ones are ours is not
        # known from the bytes, so the real times go in and it is encoded again.
        for entry in marked:
            entry["time"] = manager_time
        return join_status(parts), None
    new_time = manager_time.encode()
    pieces = [_METADATA[:-1]]
    last = 0
    for at in marks:
        pieces += (metadata[last:at], new_time)
        last = at + len(mark)
    pieces += (metadata[last:], parts.middle, _STATUS_FIELD, orjson.dumps(parts.status), b"}")
    body = b"".join(pieces)
    head = len(_METADATA) - 1  # where ``metadata`` starts in the body
    rv_at = _proven_rv_at(body, rv)
    if rv_at is None or (marks and rv_at > head + marks[0]):
        return body, None
    status_at = head + len(metadata) + len(parts.middle)
    time_ats = tuple(head + at for at in marks)
    return body, StatusSplice(body, rv_at, len(rv), time_ats, len(new_time), status_at)


def _proven_rv_at(body: bytes, rv: str) -> int | None:
    """Where metadata.resourceVersion's value ``rv`` starts in ``body``, or None if it
    is not where the cluster puts it."""
    at = body.find(b'"resourceVersion":"' + rv.encode() + b'"')
    if at < 0 or not body.startswith(_METADATA):
        return None
    # Only the identity fields come before it. With no '{' or '[' in between nothing is
    # nested, so this is the metadata's own key (a '"' inside a string is escaped).
    if body.find(b"{", _META_AT + 1, at) >= 0 or body.find(b"[", _META_AT + 1, at) >= 0:
        return None
    return at + len(b'"resourceVersion":"')


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
    "StatusSplice",
    "join_status",
    "join_status_marked",
    "spec_replicas",
    "split_status",
    "time_mark",
    "with_resource_version",
    "with_spec_replicas",
]
