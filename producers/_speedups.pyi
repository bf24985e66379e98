"""Types of the C extension producers/_speedups.c."""

import msgspec

def shape(
    raw: bytes | memoryview | msgspec.Raw,
    api_version_json: bytes,
    kind_json: bytes,
    drop_last_applied: bool,
) -> tuple[bytes, str, str, str, str, dict[str, str], tuple[str, ...], str] | None: ...
def shape_event(
    line: bytes | memoryview | msgspec.Raw,
    api_version_json: bytes,
    kind_json: bytes,
    drop_last_applied: bool,
) -> tuple[str, bytes, str, str, str, str, dict[str, str], tuple[str, ...], str] | None: ...
def fingerprint(body: bytes, member: bytes, key: bytes) -> bytes: ...
