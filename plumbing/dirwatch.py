"""Notice writes to files of one directory as they happen (Linux inotify, via ctypes).

The query service reads the consumer's RocksDB directory as a secondary instance and
must catch up to see new commits. Polling alone puts the poll interval into every
change's latency; a commit appends to the write-ahead log (``NNNNNN.log``) and a
flush or compaction rewrites the ``MANIFEST-NNNNNN``, so watching those names tells
the service when a catch-up has something to replay. Where inotify is not available
(another OS, a kernel without it, the watch limit reached) ``DirectoryWatch.open``
returns None and callers keep polling.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# <sys/inotify.h>
_IN_MODIFY = 0x00000002
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
_EVENT_HEADER = struct.Struct("iIII")  #: wd, mask, cookie, len; then len bytes of name


def event_names(buffer: bytes) -> list[bytes]:
    """The file names of the inotify events packed in ``buffer`` (NUL padding removed)."""
    names = []
    at, end = 0, len(buffer)
    while at + _EVENT_HEADER.size <= end:
        _wd, _mask, _cookie, length = _EVENT_HEADER.unpack_from(buffer, at)
        at += _EVENT_HEADER.size
        names.append(buffer[at : at + length].rstrip(b"\0"))
        at += length
    return names


def is_rocksdb_commit_file(name: bytes) -> bool:
    """A file whose change means new data for a secondary: the WAL or the MANIFEST
    (not SST files, which a flush or compaction writes for seconds before the MANIFEST
    names them)."""
    return (name.endswith(b".log") and name[:-4].isdigit()) or name.startswith(b"MANIFEST-")


class DirectoryWatch:
    """An inotify watch on one directory; ``attach`` calls back on the event loop
    whenever a file whose name passes ``wanted`` is written, created or moved in."""

    def __init__(self, fd: int, path: Path, wanted: Callable[[bytes], bool]) -> None:
        self._fd = fd
        self.path = path
        self._wanted = wanted
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def open(cls, path: Path, wanted: Callable[[bytes], bool]) -> DirectoryWatch | None:
        """Watch ``path``; None (and a log line) where inotify cannot."""
        name = ctypes.util.find_library("c")
        if name is None:
            return None
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            init, add = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError):
            return None
        add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            log.info("no inotify (%s): polling %s", os.strerror(ctypes.get_errno()), path)
            return None
        if add(fd, os.fsencode(path), _MASK) < 0:
            log.info("cannot watch %s (%s): polling", path, os.strerror(ctypes.get_errno()))
            os.close(fd)
            return None
        return cls(fd, path, wanted)

    def attach(self, loop: asyncio.AbstractEventLoop, on_write: Callable[[], None]) -> None:
        """Call ``on_write`` (on ``loop``) after each read of events that names a wanted file."""

        def readable() -> None:
            try:
                buffer = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return
            if any(self._wanted(n) for n in event_names(buffer)):
                on_write()

        self._loop = loop
        loop.add_reader(self._fd, readable)

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1
