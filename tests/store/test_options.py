"""StoreOptions: bad values are refused with the project's ConfigError, and the tuned
knobs reach RocksDB (read back from the OPTIONS file RocksDB writes at open)."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest
from view_feed import Feed

from deltas.errors import ConfigError
from store import StoreOptions, View, ViewReader
from store import layout as L


@pytest.mark.parametrize(
    "field, value",
    [
        ("versions_l0_compaction_trigger", 1),
        ("versions_l0_compaction_trigger", 20),
        ("max_background_jobs", 0),
        ("block_cache_bytes", 1024),
        ("zstd_dictionary_bytes", -1),
        ("bottommost_compression", "snappy"),
        ("zstd_level", 20),
        ("zstd_level", -8),
    ],
)
def test_a_setting_that_cannot_work_is_refused(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        StoreOptions(**{field: value})  # type: ignore[arg-type]


def _rocksdb_options(store: Path) -> configparser.ConfigParser:
    latest = max(store.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(latest.read_text())
    return parser


def test_versions_compacts_at_more_l0_files_and_point_lookup_cfs_have_bloom_filters(
    tmp_path: Path,
) -> None:
    View.open(tmp_path / "s", StoreOptions(versions_l0_compaction_trigger=6)).close()
    options = _rocksdb_options(tmp_path / "s")

    def cf(section: str, name: str, key: str) -> str:
        return options[f'{section} "{name}"'][key]

    assert cf("CFOptions", L.CF_VERSIONS, "level0_file_num_compaction_trigger") == "6"
    assert cf("CFOptions", L.CF_OBJMETA, "level0_file_num_compaction_trigger") == "4"
    # writes slow down and stop 16 and 32 files above the bulk trigger, in every CF
    for name in (L.CF_VERSIONS, L.CF_OBJMETA, L.CF_IDX_LABEL):
        assert cf("CFOptions", name, "level0_slowdown_writes_trigger") == "80"
        assert cf("CFOptions", name, "level0_stop_writes_trigger") == "96"
    View.open(tmp_path / "t", StoreOptions(bulk_l0_compaction_trigger=32)).close()
    defaults = _rocksdb_options(tmp_path / "t")['CFOptions "versions"']
    assert defaults["level0_file_num_compaction_trigger"] == "16"
    assert defaults["level0_slowdown_writes_trigger"] == "48"
    assert defaults["level0_stop_writes_trigger"] == "64"
    for name in (L.CF_VERSIONS, L.CF_OBJMETA):
        assert "bloomfilter" in cf("TableOptions/BlockBasedTable", name, "filter_policy")
    assert cf("TableOptions/BlockBasedTable", L.CF_IDX_LABEL, "filter_policy") == "nullptr"


def test_the_writer_appends_to_vector_memtables_for_the_cfs_it_only_writes(
    tmp_path: Path,
) -> None:
    View.open(tmp_path / "s", StoreOptions()).close()
    options = _rocksdb_options(tmp_path / "s")
    factories = {name: options[f'CFOptions "{name}"']["memtable_factory"] for name in L.ALL_CFS}
    for name in (L.CF_VERSIONS, L.CF_IDX_LABEL, L.CF_IDX_OWNER, L.CF_IDX_APP):
        assert "VectorRepFactory" in factories[name], name
    # read before every write / scanned by every commit: a vector memtable would sort a
    # copy on each of those reads
    for name in (L.CF_OBJMETA, L.CF_META, L.CF_CHANGES, L.CF_HISTORY_EXPIRY):
        assert factories[name] == "SkipListFactory", name
    assert options["DBOptions"]["allow_concurrent_memtable_write"] == "false"


def test_vector_memtables_can_be_turned_off(tmp_path: Path) -> None:
    View.open(tmp_path / "s", StoreOptions(vector_memtables=False)).close()
    options = _rocksdb_options(tmp_path / "s")
    for name in L.ALL_CFS:
        assert options[f'CFOptions "{name}"']["memtable_factory"] == "SkipListFactory", name
    assert options["DBOptions"]["allow_concurrent_memtable_write"] == "true"


def test_bodies_compress_at_the_configured_zstd_level_with_a_dictionary(tmp_path: Path) -> None:
    View.open(tmp_path / "s", StoreOptions()).close()
    View.open(tmp_path / "t", StoreOptions(zstd_level=3, zstd_dictionary_bytes=0)).close()

    def bottommost(store: str) -> str:
        section = _rocksdb_options(tmp_path / store)[f'CFOptions "{L.CF_VERSIONS}"']
        assert section["bottommost_compression"] == "kZSTD"
        return section["bottommost_compression_opts"]

    assert "level=1;" in bottommost("s") and "max_dict_bytes=16384;" in bottommost("s")
    assert "level=3;" in bottommost("t") and "max_dict_bytes=0;" in bottommost("t")


#: Opens a writer (the option as given), compacts, prints the nice value of RocksDB's
#: compaction (rocksdb:low) and flush (rocksdb:high) threads. A child process: the
#: priority is set on RocksDB's process-wide default Env.
_THREAD_PRIORITIES = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from view_feed import Feed
from store import StoreOptions, View
view = View.open(Path(sys.argv[1]), StoreOptions(low_priority_compactions=sys.argv[2] == "1"))
feed = Feed("alpha")
for batch in range(2):  # two flushed files, so the compaction below really runs a job
    view.apply([feed.upsert(f"p{batch}-{i}", "1") for i in range(20)])
    view.flush()
view.compact()
for task in Path("/proc/self/task").iterdir():
    name = (task / "comm").read_text().strip()
    if name.startswith("rocksdb:"):
        print(name, (task / "stat").read_text().rsplit(")", 1)[1].split()[16])
view.close()
"""


@pytest.mark.parametrize("low, compaction_nice", [(True, "19"), (False, "0")])
def test_compactions_run_at_the_lowest_cpu_priority_and_flushes_do_not(
    tmp_path: Path, low: bool, compaction_nice: str
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _THREAD_PRIORITIES,
            str(tmp_path / "s"),
            "1" if low else "0",
            str(Path(__file__).parent),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    nice = dict(line.split() for line in done.stdout.splitlines())
    assert nice == {"rocksdb:low": compaction_nice, "rocksdb:high": "0"}


def _logged_option(log_dir: Path, name: str) -> str:
    """The value RocksDB's info log (LOG) printed for ``Options.<name>`` at open."""
    text = (log_dir / "LOG").read_text()
    match = re.search(rf"Options\.{name}: (\S+)", text)
    assert match, f"{name} not in {log_dir / 'LOG'}"
    return match.group(1)


def test_readers_open_new_table_files_on_one_thread_and_still_see_them(tmp_path: Path) -> None:
    # RocksDB starts max_file_opening_threads threads per column family on every
    # catch-up of a secondary; the default (16) made an idle catch-up cost ~6 ms of CPU.
    feed = Feed("alpha")
    with (
        View.open(tmp_path / "s", StoreOptions()) as view,
        ViewReader.open(tmp_path / "s", tmp_path / "secondary") as reader,
    ):
        assert _logged_option(tmp_path / "secondary", "max_file_opening_threads") == "1"
        assert _logged_option(tmp_path / "s", "max_file_opening_threads") == "16"
        for i in range(3):  # three flushes: new table files for the reader to open
            view.apply([feed.upsert(f"p{j}", str(i + 1)) for j in range(50 * i, 50 * i + 50)])
            view.flush()
        view.compact()
        reader.catch_up()
        assert reader.count() == 150
