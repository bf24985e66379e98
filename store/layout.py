"""Byte layout of the view: column families, keys and values. Pure code, no I/O.

Column families (docs/store.md has the full table)::

    objmeta          cluster\\0group\\0kind\\0namespace\\0name  -> META prefix + wire header
    idx_label        esc(key)\\0esc(value)\\0<objkey>           -> b""
    idx_owner        cluster\\0esc(owner uid)\\0<objkey>        -> b""
    idx_app          esc(app)\\0<objkey>                        -> b""
    versions         <objkey>\\0BE64(start ms)BE64(offset)     -> HIST prefix + objmeta + body
    history_expiry   BE64(end ms)<history key>                 -> b""
    changes          BE64(first position of a commit)          -> msgpack [[op, ms, objkey, rv], ...]
    meta             tag byte + fields                         -> small msgpack / BE ints

Every object version, the current one included, is stored once, in ``versions``
(body JSON as received): the current one is found from its ``objmeta`` (start ms and
offset are in the META prefix). Superseded versions stay there for
``history_retention_s``, then go.

Object keys sort by cluster, group, kind, namespace, name, so a prefix scan of
``objmeta`` serves LIST by cluster/kind/namespace. Key parts never contain NUL (the wire format
rejects it); label keys/values, owner uids and app names may, so index keys
escape them (``esc``) to keep the separators unambiguous.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import msgpack

from deltas.codec import HEADER_FIELDS

CF_OBJMETA: Final = "objmeta"
CF_IDX_LABEL: Final = "idx_label"
CF_IDX_OWNER: Final = "idx_owner"
CF_IDX_APP: Final = "idx_app"
#: Every version (current and superseded) of every object, keyed by object then start.
CF_VERSIONS: Final = "versions"
CF_HISTORY_EXPIRY: Final = "history_expiry"
CF_CHANGES: Final = "changes"
CF_META: Final = "meta"
ALL_CFS: Final = (
    CF_OBJMETA,
    CF_IDX_LABEL,
    CF_IDX_OWNER,
    CF_IDX_APP,
    CF_VERSIONS,
    CF_HISTORY_EXPIRY,
    CF_CHANGES,
    CF_META,
)
#: The schema of this layout; stored in ``meta`` and checked on open.
#: 1: current bodies in an ``objects`` CF and again in ``history``; 2: one ``versions`` CF.
SCHEMA_VERSION: Final = 2
#: Column families of layout 1, to recognise such a store on open.
LAYOUT_1_CFS: Final = frozenset({"objects", "history"})

SEP: Final = b"\x00"

# -- objects / objmeta -------------------------------------------------------------------


def object_key(cluster: str, group: str, kind: str, namespace: str, name: str) -> bytes:
    return f"{cluster}\x00{group}\x00{kind}\x00{namespace}\x00{name}".encode()


def split_object_key(key: bytes) -> tuple[str, str, str, str, str]:
    c, g, k, ns, n = key.decode().split("\x00")
    return c, g, k, ns, n


def cluster_of_key(key: bytes) -> str:
    return key[: key.index(SEP)].decode()


#: objmeta value prefix: schema, flags, wire format version, partition, offset,
#: item hash (digest contribution), event time ms (version start), relist generation.
META: Final = struct.Struct(">BBBIQQQI")
META_SIZE: Final = META.size
#: flags bit: the body was MSGPACK on the wire and was converted to JSON at apply time.
FLAG_CONVERTED: Final = 1

#: Positions of header fields inside the stored wire header (a msgpack array).
H_VERSION: Final = HEADER_FIELDS.index("version")
H_UID: Final = HEADER_FIELDS.index("uid")
H_RV: Final = HEADER_FIELDS.index("resource_version")
H_SEQ: Final = HEADER_FIELDS.index("seq")
H_SESSION: Final = HEADER_FIELDS.index("session")
H_LABELS: Final = HEADER_FIELDS.index("labels")
H_OWNERS: Final = HEADER_FIELDS.index("owners")
H_APP: Final = HEADER_FIELDS.index("app")


def header_fields(meta: bytes) -> list[Any]:
    """The wire header stored after the META prefix, as its msgpack array."""
    fields: list[Any] = msgpack.unpackb(meta[META_SIZE:], raw=False)
    return fields


# -- index keys --------------------------------------------------------------------------


def esc(text: str) -> bytes:
    """Injective encoding without NUL: 0x01 -> 01 01, 0x00 -> 01 02."""
    raw = text.encode()
    if b"\x00" in raw or b"\x01" in raw:
        raw = raw.replace(b"\x01", b"\x01\x01").replace(b"\x00", b"\x01\x02")
    return raw


def unesc(raw: bytes) -> str:
    """Inverse of :func:`esc`."""
    if b"\x01" in raw:
        out = bytearray()
        i = 0
        while i < len(raw):
            if raw[i] == 1 and i + 1 < len(raw):
                out.append(1 if raw[i + 1] == 1 else 0)
                i += 2
            else:
                out.append(raw[i])
                i += 1
        raw = bytes(out)
    return raw.decode()


def plain(labels: dict[str, str], owners: tuple[str, ...], app: str) -> bool:
    """True when no index string contains NUL or 0x01, so ``esc`` would change nothing
    (always, for objects the API server accepted: label syntax excludes both)."""
    s = "".join(labels) + "".join(labels.values()) + "".join(owners) + app
    return "\x00" not in s and "\x01" not in s


def label_prefix(key: str, value: str | None) -> bytes:
    if value is None:
        return esc(key) + SEP
    return esc(key) + SEP + esc(value) + SEP


def objkey_of_label_index(index_key: bytes) -> bytes:
    return index_key.split(SEP, 2)[2]


def owner_prefix(cluster: str, owner_uid: str) -> bytes:
    return cluster.encode() + SEP + esc(owner_uid) + SEP


def objkey_of_owner_index(index_key: bytes) -> bytes:
    return index_key.split(SEP, 2)[2]


def app_prefix(app: str) -> bytes:
    return esc(app) + SEP


def objkey_of_app_index(index_key: bytes) -> bytes:
    return index_key.split(SEP, 1)[1]


# -- history -----------------------------------------------------------------------------

_BE64: Final = struct.Struct(">Q")
#: history value prefix: entry kind, length of the objmeta that follows (then the body).
#: Every version is written when applied (start = its event time); a delete writes a
#: DELETED entry (objmeta of the last version, no body) at the delete's event time.
HIST: Final = struct.Struct(">BI")
HIST_VERSION: Final = 1
HIST_DELETED: Final = 2
HIST_SUFFIX_SIZE: Final = 1 + 8 + 8


def history_key(objkey: bytes, start_ms: int, offset: int) -> bytes:
    return objkey + SEP + _BE64.pack(start_ms) + _BE64.pack(offset)


def version_key(objkey: bytes, meta: bytes) -> bytes:
    """Key of the version an objmeta value describes (its start ms and offset)."""
    fields = META.unpack_from(meta)
    return objkey + SEP + _BE64.pack(fields[6]) + _BE64.pack(fields[4])


def body_of_version(value: bytes) -> bytes:
    """The body stored in a ``versions`` value (HIST prefix, objmeta, body)."""
    return value[HIST.size + HIST.unpack_from(value)[1] :]


def objkey_of_history(hkey: bytes) -> bytes:
    return hkey[:-HIST_SUFFIX_SIZE]


def start_of_history(hkey: bytes) -> int:
    start: int = _BE64.unpack_from(hkey, len(hkey) - 16)[0]
    return start


def be64(value: int) -> bytes:
    return _BE64.pack(value)


def from_be64(raw: bytes, offset: int = 0) -> int:
    value: int = _BE64.unpack_from(raw, offset)[0]
    return value


# -- change feed -------------------------------------------------------------------------
# One entry per commit (not per change): a write of N changes costs one RocksDB entry.
# The entry's key is the position of its first change; the others follow consecutively.


def pack_changes(changes: list[tuple[int, int, bytes, str]]) -> bytes:
    """[(op, event ms, objkey, rv), ...] -> the value of one change-feed entry."""
    packed: bytes = msgpack.packb(changes, use_bin_type=True)
    return packed


def unpack_changes(raw: bytes) -> list[list[Any]]:
    changes: list[list[Any]] = msgpack.unpackb(raw, raw=False)
    return changes


# -- meta keys ---------------------------------------------------------------------------

_BE32: Final = struct.Struct(">I")
TAG_OFFSET: Final = b"o"  #: o<topic>\0<BE32 partition> -> BE64 next offset
TAG_SESSION: Final = b"s"  #: s<cluster>\0<BE32 partition> -> msgpack [session, last seq]
TAG_DIGEST: Final = b"d"  #: d<cluster>\0<BE32 partition> -> msgpack [count, hash]
TAG_RELIST: Final = b"r"  #: r<cluster>\0<BE32 p><group>\0<kind> -> msgpack [gen, open id, full]
TAG_KIND: Final = b"k"  #: k<cluster>\0<group>\0<kind> -> msgpack count
TAG_CLUSTER: Final = b"c"  #: c<cluster> -> msgpack cluster status map
TAG_WALL: Final = b"w"  #: w<cluster> -> BE64 wall-clock ms of the last commit (not digested)
KEY_FEED: Final = b"F"  #: msgpack [next position, first kept position]
KEY_SCHEMA: Final = b"V"  #: msgpack schema version


def partitioned_key(tag: bytes, name: str, partition: int) -> bytes:
    return tag + name.encode() + SEP + _BE32.pack(partition)


def split_partitioned_key(key: bytes) -> tuple[str, int]:
    name = key[1:-5].decode()
    partition: int = _BE32.unpack_from(key, len(key) - 4)[0]
    return name, partition


def relist_meta_key(cluster: str, partition: int, group: str, kind: str) -> bytes:
    return partitioned_key(TAG_RELIST, cluster, partition) + f"{group}\x00{kind}".encode()


def split_relist_meta_key(key: bytes) -> tuple[str, int, str, str]:
    sep = key.index(SEP)
    cluster = key[1:sep].decode()
    partition: int = _BE32.unpack_from(key, sep + 1)[0]
    group, kind = key[sep + 5 :].decode().split("\x00")
    return cluster, partition, group, kind


def kind_meta_key(cluster: str, group: str, kind: str) -> bytes:
    return TAG_KIND + f"{cluster}\x00{group}\x00{kind}".encode()


def split_kind_meta_key(key: bytes) -> tuple[str, str, str]:
    cluster, group, kind = key[1:].decode().split("\x00")
    return cluster, group, kind


def cluster_meta_key(tag: bytes, cluster: str) -> bytes:
    return tag + cluster.encode()


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    raw = bytearray(prefix)
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return None
    raw[-1] += 1
    return bytes(raw)
