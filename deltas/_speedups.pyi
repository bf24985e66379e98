"""Types of the C extension deltas/_speedups.c."""

from deltas.codec import Header
from deltas.keys import ResourceKey
from deltas.model import BodyEncoding, Op

def configure(
    header_type: type[Header],
    key_type: type[ResourceKey],
    op_upsert: Op,
    op_delete: Op,
    enc_none: BodyEncoding,
    enc_json: BodyEncoding,
    enc_msgpack: BodyEncoding,
) -> None: ...
def decode_object_header(data: bytes, max_body: int) -> Header | None: ...
