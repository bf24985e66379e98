"""What the broker holds for a set of topics, read from its data directory.

Record batches are stored as the producer compressed them, so the ``.log`` bytes
of a topic are the bytes that crossed the wire into Kafka (plus a 61-byte batch
header per batch, which is on the wire too). Index files are preallocated and
sparse, so disk use counts allocated blocks, not file sizes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TopicBytes:
    """Bytes of the topics whose names start with a prefix, at one instant."""

    log_bytes: int  #: sum of the ``.log`` segment sizes: record batches as sent
    allocated_bytes: int  #: blocks on disk of everything in the partition directories
    partitions: int  #: partition directories found


def partition_dir_topic(dirname: str) -> str:
    """``<topic>-<partition>`` -> ``<topic>`` (topic names may contain dashes)."""
    topic, _, _partition = dirname.rpartition("-")
    return topic


def topic_bytes(data_dir: Path, topic_prefix: str) -> TopicBytes:
    """Sum over every partition directory whose topic starts with ``topic_prefix``."""
    log_bytes = 0
    allocated = 0
    partitions = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(data_dir):
            if not entry.is_dir() or not partition_dir_topic(entry.name).startswith(topic_prefix):
                continue
            partitions += 1
            with contextlib.suppress(FileNotFoundError):
                for item in os.scandir(entry.path):
                    with contextlib.suppress(FileNotFoundError):
                        st = item.stat()
                        allocated += st.st_blocks * 512
                        if item.name.endswith(".log"):
                            log_bytes += st.st_size
    return TopicBytes(log_bytes, allocated, partitions)
