"""Types of the C extension store/_speedups.c."""

from collections.abc import Callable

from rocksdict import ColumnFamily

def write_new_object(
    put: Callable[[bytes, bytes, ColumnFamily], object],
    cfs: tuple[ColumnFamily, ColumnFamily, ColumnFamily, ColumnFamily, ColumnFamily],
    value: bytes,
    body_offset: int,
    objkey: bytes,
    cluster: str,
    part: int,
    offset: int,
    event_ms: int,
    gen: int,
    flags: int,
    body: bytes | None,
    labels: dict[str, str] | bytes,  #: a dict, or a msgpack map of str to str
    owners: tuple[str, ...],
    app: str,
    resource_version: str,
) -> tuple[int, bytes] | None: ...
def item_hash(key: bytes, resource_version: str) -> int: ...
def write_replacement(
    put: Callable[[bytes, bytes, ColumnFamily], object],
    delete: Callable[[bytes, ColumnFamily], object],
    cfs: tuple[ColumnFamily, ColumnFamily, ColumnFamily],
    value: bytes,
    body_offset: int,
    objkey: bytes,
    cluster: str,
    part: int,
    offset: int,
    event_ms: int,
    gen: int,
    flags: int,
    body: bytes | None,
    resource_version: str,
    old_meta: bytes,
    history_cutoff_ms: int | None,
) -> tuple[int, bytes, int, int, bool] | None: ...
def index_fields_span(header: bytes) -> tuple[int, int] | None: ...
def split_known(layers: list[bytearray], keys: list[bytes]) -> tuple[list[bytes], list[bytes]]: ...
