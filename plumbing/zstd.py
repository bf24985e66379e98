"""zstd for Kafka record batches with reused contexts.

aiokafka compresses and decompresses zstd batches with ``cramjam.zstd``, which builds a
new zstd context (and its tables and window) on every call. Live batches are small (a
few records per partition per linger), so that set-up dominates: for a batch of 4 ~2 KB
Pods, compressing costs 6.5 us per Pod that way and 3.8 us with a reused context,
decompressing 3.3 vs 1.3 us (docs/benchmarks.md, session 7). Same format; at the same
level (aiokafka's 3, the default here) byte-identical output.

:func:`reuse_zstd_contexts` points aiokafka's record-batch module (the C extension and
its pure-Python twin) at :func:`zstd_encode`/:func:`zstd_decode` below: module globals
that aiokafka looks up on each call. The composition root calls it once per producer or
consumer process; tests/plumbing/test_zstd.py checks that aiokafka really calls them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import zstandard

from deltas.errors import ConfigError

#: aiokafka's (and the Kafka broker's) default zstd level (KIP-390).
DEFAULT_LEVEL = 3
#: The levels zstd accepts (negative: faster, larger).
MIN_LEVEL, MAX_LEVEL = -7, 22
#: Largest content size, bytes, a frame may declare to be decompressed here in one
#: allocation. A record batch is at most a fetch (tens of MiB) before decompression;
#: a frame declaring more (a corrupt or hostile header) goes to aiokafka's decoder,
#: which grows its output as the data really decompresses.
MAX_DECLARED_BYTES = 256 * 1024 * 1024


class _Contexts(threading.local):
    """zstd contexts are not thread-safe: one set per thread (in practice, the loop's)."""

    def __init__(self) -> None:
        self.compressors: dict[int, zstandard.ZstdCompressor] = {}
        self.decompressor = zstandard.ZstdDecompressor()


_contexts = _Contexts()
#: aiokafka's own decoder, kept for frames that do not state their decompressed size.
_fallback_decode: Callable[[Any], bytes] | None = None


def zstd_encode(payload: Any, level: int | None = None) -> bytes:
    """One zstd frame of ``payload`` (with its size in the header, as cramjam writes it)."""
    lvl = DEFAULT_LEVEL if level is None else level
    compressor = _contexts.compressors.get(lvl)
    if compressor is None:
        compressor = _contexts.compressors[lvl] = zstandard.ZstdCompressor(level=lvl)
    return compressor.compress(payload)


def zstd_decode(payload: Any) -> bytes:
    """The content of a zstd frame. Frames that do not state their size (streaming
    encoders: other Kafka clients may write them) or state more than
    :data:`MAX_DECLARED_BYTES` go to aiokafka's own decoder."""
    if _fallback_decode is not None:
        try:
            declared = zstandard.frame_content_size(payload)
        except zstandard.ZstdError:
            declared = -1  # not even a frame header: aiokafka's decoder names the fault
        if not 0 <= declared <= MAX_DECLARED_BYTES:
            return _fallback_decode(payload)
    return _contexts.decompressor.decompress(payload)


def _record_modules() -> list[ModuleType]:
    from aiokafka.record import default_records

    modules: list[ModuleType] = [default_records]
    try:
        from aiokafka.record._crecords import default_records as c_default_records
    except ImportError:  # aiokafka without its C extensions uses the Python module
        pass
    else:
        modules.append(c_default_records)
    return modules


def reuse_zstd_contexts(level: int = DEFAULT_LEVEL) -> None:
    """Make aiokafka's record batches use :func:`zstd_encode` (at ``level``) and
    :func:`zstd_decode`. Idempotent; affects the whole process (call it from the
    composition root)."""
    global _fallback_decode
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ConfigError(f"zstd level must be in [{MIN_LEVEL}, {MAX_LEVEL}], got {level}")
    encode = zstd_encode if level == DEFAULT_LEVEL else functools.partial(zstd_encode, level=level)
    for module in _record_modules():
        current = getattr(module, "zstd_decode", None)
        if current is None or not hasattr(module, "zstd_encode"):
            continue  # an aiokafka that no longer has these globals keeps its own codec
        if current is not zstd_decode:
            _fallback_decode = current
        module.zstd_encode = encode  # type: ignore[attr-defined]
        module.zstd_decode = zstd_decode  # type: ignore[attr-defined]


__all__ = ["DEFAULT_LEVEL", "reuse_zstd_contexts", "zstd_decode", "zstd_encode"]
