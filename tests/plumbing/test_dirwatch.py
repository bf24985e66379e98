"""The directory watch that lets the query service catch up when the writer commits."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from plumbing.dirwatch import DirectoryWatch, event_names, is_rocksdb_commit_file


def packed(*names: bytes) -> bytes:
    out = b""
    for name in names:
        padded = name + b"\0" * (16 - len(name) % 16)  # the kernel pads names with NULs
        out += struct.pack("iIII", 1, 2, 0, len(padded)) + padded
    return out


def test_event_names_unpacks_every_event_of_a_read() -> None:
    assert event_names(packed(b"000012.log", b"MANIFEST-000004", b"x")) == [
        b"000012.log",
        b"MANIFEST-000004",
        b"x",
    ]
    assert event_names(b"") == []


def test_only_the_wal_and_manifest_mean_new_data() -> None:
    for name in (b"000012.log", b"MANIFEST-000004"):
        assert is_rocksdb_commit_file(name), name
    for name in (b"000013.sst", b"LOG", b"LOG.old.1700000000", b"CURRENT", b"x.log", b".log"):
        assert not is_rocksdb_commit_file(name), name


async def test_a_write_to_a_wanted_file_calls_back_and_others_do_not(tmp_path: Path) -> None:
    watch = DirectoryWatch.open(tmp_path, is_rocksdb_commit_file)
    if watch is None:
        pytest.fail("inotify is available on every machine this project supports")
    calls = asyncio.Event()
    watch.attach(asyncio.get_running_loop(), calls.set)
    try:
        (tmp_path / "000001.sst").write_bytes(b"table")
        (tmp_path / "LOG").write_text("info")
        await asyncio.sleep(0.2)
        assert not calls.is_set()
        (tmp_path / "000002.log").write_bytes(b"a commit")
        await asyncio.wait_for(calls.wait(), 2)
    finally:
        watch.close()
    watch.close()  # twice is harmless


def test_a_missing_directory_means_polling(tmp_path: Path) -> None:
    assert DirectoryWatch.open(tmp_path / "absent", is_rocksdb_commit_file) is None
