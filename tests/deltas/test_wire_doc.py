"""docs/wire-format.md shows a real encoded record; this re-encodes it so the doc cannot rot.

If the codec changes its output on purpose, regenerate the dump with
``python tests/deltas/test_wire_doc.py`` and paste it into the doc.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from deltas import (
    BodyEncoding,
    Delta,
    Op,
    ResourceKey,
    decode,
    encode,
    encode_object,
    partition_for,
)
from deltas.index_fields import app_of, labels_of, owners_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"

# The example exactly as the doc shows it (keep the two in sync).
EXAMPLE_OBJECT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "4f6c2a9e-1b7d-4e0a-9c3b-5d8e7f6a1b2c",
        "resourceVersion": "81723",
        "labels": {"app": "web"},
        "annotations": {"moniker.spinnaker.io/application": "shop"},
    },
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
}
EXAMPLE = Delta(
    op=Op.UPSERT,
    cluster="prod-eu-1",
    key=ResourceKey("apps", "v1", "Deployment", "shop", "web"),
    uid="4f6c2a9e-1b7d-4e0a-9c3b-5d8e7f6a1b2c",
    resource_version="81723",
    seq=42,
    session="7f3a9c2e",
    event_time_ms=1_700_000_000_000,
    labels=labels_of(EXAMPLE_OBJECT),
    owners=owners_of(EXAMPLE_OBJECT),
    app=app_of(EXAMPLE_OBJECT),
    body_encoding=BodyEncoding.JSON,
    body=encode_object(EXAMPLE_OBJECT, BodyEncoding.JSON),
)


def hexdump(data: bytes) -> str:
    """``hexdump -C`` layout: offset, 16 bytes in two groups of 8, printable ASCII."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {left:<23}  {right:<23}  |{text}|")
    return "\n".join(lines)


def documented_block(name: str) -> str:
    """The fenced block that follows ``<!-- wire-doc:NAME -->`` in the doc."""
    match = re.search(
        rf"<!-- wire-doc:{name} -->\s*```[a-z]*\n(.*?)```", DOC.read_text(), re.DOTALL
    )
    assert match, f"docs/wire-format.md lost its wire-doc:{name} block"
    return match.group(1)


def bytes_of_dump(dump: str) -> bytes:
    out = bytearray()
    for line in dump.strip().splitlines():
        hex_part = line[10:].split("|", 1)[0]
        out += bytes.fromhex(hex_part)
    return bytes(out)


def test_documented_record_is_what_the_codec_produces() -> None:
    record = encode(EXAMPLE)
    documented = bytes_of_dump(documented_block("record"))
    assert documented == record, "re-run this file as a script and paste its dump into the doc"
    assert documented_block("record").strip() == hexdump(record)
    assert decode(documented) == EXAMPLE


def test_documented_kafka_key_and_partition() -> None:
    key_block = documented_block("key")
    key = EXAMPLE.kafka_key()
    assert f"key       {key.hex(' ')}" in key_block
    assert f"partition {partition_for(key, 12)}" in key_block


def test_documented_body_is_the_example_object() -> None:
    assert documented_block("body").strip() == EXAMPLE.body.decode()


if __name__ == "__main__":
    print(hexdump(encode(EXAMPLE)))
    print(f"key       {EXAMPLE.kafka_key().hex(' ')}")
    print(f"partition {partition_for(EXAMPLE.kafka_key(), 12)}")
    print(EXAMPLE.body.decode())
