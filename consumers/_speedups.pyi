"""Types of the C extension consumers/_speedups.c."""

from collections.abc import Callable

from store.records import SourceRecord

class RecordCursor:
    next_fetch_offset: int
    exhausted: bool
    def __init__(
        self,
        data: bytes,
        topic: str,
        partition: int,
        fetch_offset: int,
        decompress: Callable[[int, bytes], bytes],
        record_type: type[SourceRecord],
        corrupt: type[Exception],
    ) -> None: ...
    def take(self, n: int) -> list[SourceRecord]: ...
    def __iter__(self) -> RecordCursor: ...
    def __next__(self) -> SourceRecord: ...
