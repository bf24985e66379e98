"""Random streams against a plain-Python model of the view: whatever the batch
boundaries, the stored objects, indexes, counts and running digests equal the model's."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from view_feed import Feed

from deltas import Op, ResourceKey, RunningDigest
from store import SourceRecord, StoreOptions, View

PARTITIONS = 3
KINDS = ("Pod", "Service")


@dataclass
class Model:
    objects: dict[tuple[str, str], tuple[str, dict[str, str], tuple[str, ...], str, int]] = field(
        default_factory=dict
    )  # (kind, name) -> (rv, labels, owners, app, partition)
    relists: dict[tuple[int, str], tuple[str, bool, set[str]]] = field(default_factory=dict)
    swept: int = 0  #: objects deleted by full relists (the test must exercise sweeps)

    def upsert(
        self,
        kind: str,
        name: str,
        rv: str,
        labels: dict[str, str],
        owners: tuple[str, ...],
        app: str,
        part: int,
    ) -> None:
        self.objects[(kind, name)] = (rv, labels, owners, app, part)
        relist = self.relists.get((part, kind))
        if relist is not None:
            relist[2].add(name)

    def end(self, part: int, kind: str, rid: str) -> None:
        relist = self.relists.get((part, kind))
        if relist is None or relist[0] != rid:
            return
        del self.relists[(part, kind)]
        if relist[1]:
            for (k, n), obj in list(self.objects.items()):
                if k == kind and obj[4] == part and n not in relist[2]:
                    del self.objects[(k, n)]
                    self.swept += 1


def stream(seed: int) -> tuple[list[SourceRecord], Model]:
    rng = random.Random(seed)
    feed = Feed("model", partitions=PARTITIONS)
    model = Model()
    records: list[SourceRecord] = []
    for i in range(700):
        kind = rng.choice(KINDS)
        name = f"o{rng.randrange(25)}"
        part = feed.partition_of(name, kind=kind)
        roll = rng.random()
        if roll < 0.6:
            current = model.objects.get((kind, name))
            rv = current[0] if current is not None and rng.random() < 0.2 else str(i)  # some no-ops
            labels = {"a": rng.choice("xyz")} if rng.random() < 0.8 else {}
            if rng.random() < 0.3:
                labels["b"] = rng.choice("pq")
            owners: tuple[str, ...] = (f"rs{rng.randrange(3)}",) if rng.random() < 0.5 else ()
            app = rng.choice(["", "shop", "blog"])
            if current is not None and current[0] == rv:  # a no-op must carry the same content
                labels, owners, app = current[1], current[2], current[3]
            records.append(feed.upsert(name, rv, kind=kind, labels=labels, owners=owners, app=app))
            model.upsert(kind, name, rv, labels, owners, app, part)
        elif roll < 0.75:
            records.append(feed.delete(name, kind=kind))
            model.objects.pop((kind, name), None)
        elif roll < 0.8:
            records.append(feed.tombstone(name, kind=kind))
            model.objects.pop((kind, name), None)
        elif roll < 0.9:
            p, k = rng.randrange(PARTITIONS), rng.choice(KINDS)
            rid, full = f"r{i}", rng.random() < 0.7
            records.append(feed.relist(Op.RELIST_START, p, rid, full=full, kind=k))
            model.relists[(p, k)] = (rid, full, set())
        else:
            p, k = rng.randrange(PARTITIONS), rng.choice(KINDS)
            open_relist = model.relists.get((p, k))
            rid = open_relist[0] if open_relist is not None and rng.random() < 0.8 else "stale"
            full = open_relist[1] if open_relist is not None else True
            records.append(feed.relist(Op.RELIST_END, p, rid, full=full, kind=k))
            model.end(p, k, rid)
    return records, model


def check(view: View, model: Model) -> None:
    stored = {(i.kind, i.name) for i in view.list_objects(limit=10_000).items}
    assert stored == set(model.objects)
    for (kind, name), (rv, labels, owners, app, part) in model.objects.items():
        entry = view.get_entry("model", "", kind, "default", name)
        assert entry is not None
        assert (
            entry.resource_version,
            dict(entry.labels),
            entry.owners,
            entry.app,
            entry.partition,
        ) == (
            rv,
            labels,
            owners,
            app,
            part,
        )
    for key, value in (
        [("a", v) for v in "xyz"] + [("b", v) for v in "pq"] + [("a", None), ("b", None)]
    ):
        want = {
            k
            for k, o in model.objects.items()
            if key in o[1] and (value is None or o[1][key] == value)
        }
        assert {(i.kind, i.name) for i in view.by_label(key, value, limit=10_000).items} == want
    for owner in ("rs0", "rs1", "rs2"):
        want = {k for k, o in model.objects.items() if owner in o[2]}
        assert {(i.kind, i.name) for i in view.by_owner("model", owner, limit=10_000).items} == want
    for app in ("shop", "blog"):
        want = {k for k, o in model.objects.items() if o[3] == app}
        assert {(i.kind, i.name) for i in view.by_app(app, limit=10_000).items} == want
    for kind in KINDS:
        assert view.count(kind=kind) == sum(1 for k in model.objects if k[0] == kind)
    status = view.cluster_status("model")
    assert status is not None
    for p in status.partitions:
        d = RunningDigest()
        for (kind, name), o in model.objects.items():
            if o[4] == p.partition:
                d.add(ResourceKey("", "v1", kind, "default", name).identity_bytes(), o[0])
        assert (p.object_count, p.digest_hash) == (d.count, d.hash)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_batching_matches_the_model(tmp_path: Path, seed: int) -> None:
    records, model = stream(seed)
    assert model.swept > 0
    rng = random.Random(seed)
    digests = []
    for run, max_batch in enumerate((1_000, 37, 5)):
        with View.open(tmp_path / f"s{run}", StoreOptions(history_retention_s=0)) as view:
            i = 0
            while i < len(records):
                n = rng.randint(1, max_batch)
                view.apply(records[i : i + n])
                i += n
            check(view, model)
            digests.append(view.view_digest())
    assert len(set(digests)) == 1  # commit boundaries leave no trace in the view


@pytest.mark.parametrize("seed", [4, 5])
def test_get_at_matches_the_model_at_every_instant(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    now_ms = 1_800_000_000_000
    start = now_ms - 600_000
    feed = Feed("hist", partitions=2, start_ms=start)
    timeline: dict[str, list[tuple[int, str | None]]] = {}  # name -> [(event ms, rv or None)]
    records: list[SourceRecord] = []
    t = start
    for i in range(300):
        t += rng.randrange(1, 50)
        name = f"o{rng.randrange(8)}"
        if rng.random() < 0.7:
            records.append(feed.upsert(name, str(i), event_ms=t))
            timeline.setdefault(name, []).append((t, str(i)))
        else:
            records.append(feed.delete(name, event_ms=t))
            if timeline.get(name) and timeline[name][-1][1] is not None:
                timeline[name].append((t, None))
    opts = StoreOptions(history_retention_s=3600)
    with View.open(tmp_path / "s", opts, clock=lambda: now_ms / 1000) as view:
        i = 0
        while i < len(records):
            n = rng.randint(1, 40)
            view.apply(records[i : i + n])
            i += n
        for at in range(start, t + 10, 7):
            for name, events in timeline.items():
                want = None
                for when, rv in events:
                    if when <= at:
                        want = rv
                got = view.get_at("hist", "", "Pod", "default", name, at)
                assert (got.resource_version if got else None) == want, (name, at)
            listed = {item.name for item in view.list_at("hist", "", "Pod", at, limit=100).items}
            alive = {
                name
                for name, events in timeline.items()
                if [rv for when, rv in events if when <= at][-1:] not in ([], [None])
            }
            assert listed == alive, at
