"""producers/_speedups.c against the Python shaper it replaces on the common path.

The C ``shape`` must return exactly what ``KindShaper.open`` + ``finish`` make of an
object, or None (the emitter then runs the Python shaper). So: on every kind the
simulator serves it handles every object and agrees; on generated, re-serialized
and corrupted objects it agrees whenever it answers; and the emitter sends the same
records with it as without it. Pure, no broker.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from object_strategies import CONFIGS, objects
from prometheus_client import CollectorRegistry

from deltas import decode
from producers._speedups import fingerprint, shape_event
from producers._speedups import shape as shape_fast
from producers.config import StripConfig
from producers.emitter import KindEmitter
from producers.kinds import KindRef, NamespaceFilter
from producers.ledger import Ledger
from producers.metrics import ProducerMetrics
from producers.records import OutRecord, RecordFactory
from producers.shape import KindShaper
from producers.strip import LAST_APPLIED, LEADER_ANNOTATION
from simulator.generator import ClusterGenerator

Outcome = tuple[Any, ...] | None | str


def python_outcome(shaper: KindShaper, raw: bytes) -> Outcome:
    """What the Python shaper makes of ``raw``, in the C function's order; None when it
    does not open it, "error" when it raises."""
    try:
        opened = shaper.open(raw)
        if opened is None:
            return None
        shaped = shaper.finish(opened)
    except Exception:  # the C code must leave whatever this raises to Python
        return "error"
    return (
        shaped.body,
        opened.namespace,
        opened.name,
        shaped.resource_version,
        shaped.uid,
        shaped.labels,
        shaped.owners,
        shaped.app,
    )


def c_outcome(shaper: KindShaper, raw: bytes | msgspec.Raw) -> Outcome:
    args = shaper.fast_args()
    assert args is not None
    return shape_fast(raw, *args)


def assert_agrees(shaper: KindShaper, raw: bytes) -> bool:
    """C's answer equals Python's whenever C answers; True if it answered."""
    fast = c_outcome(shaper, raw)
    if fast is None:
        return False
    expected = python_outcome(shaper, raw)
    assert isinstance(fast, tuple) and isinstance(expected, tuple), (raw, expected)
    assert fast == expected, raw
    assert list(fast[5]) == list(expected[5])  # label order is the header's map order
    return True


def shaper_of(obj: dict[str, Any], config: StripConfig | None = None) -> KindShaper:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    return KindShaper(group, version, str(obj["kind"]), config or StripConfig())


def simulator_objects(clusters: int = 3, per_cluster: int = 1_000) -> list[dict[str, Any]]:
    return [
        obj
        for cluster in range(clusters)
        for obj in ClusterGenerator(f"c{cluster}", 7, per_cluster, True).objects()
    ]


def test_every_simulator_object_of_a_handled_kind_is_shaped_in_c() -> None:
    handled = skipped = 0
    kinds = set()
    for obj in simulator_objects():
        shaper = shaper_of(obj)
        if shaper.fast_args() is None:
            skipped += 1
            continue
        # As a LIST item (no apiVersion/kind for built-in kinds) and as a watch object.
        for served in (obj, {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}):
            raw = orjson.dumps(served)
            assert assert_agrees(shaper, raw), raw
            assert c_outcome(shaper, msgspec.Raw(raw)) == c_outcome(shaper, raw)
        handled += 1
        kinds.add(obj["kind"])
    assert handled > 2_500 and skipped > 0
    assert {"Pod", "Deployment", "ReplicaSet", "ConfigMap", "Service", "Widget"} <= kinds


def test_secrets_and_stripped_nodes_stay_in_python() -> None:
    assert KindShaper("", "v1", "Secret", StripConfig()).fast_args() is None
    assert KindShaper("", "v1", "Node", StripConfig()).fast_args() is None
    kept = StripConfig(strip_node_heartbeats=False)
    assert KindShaper("", "v1", "Node", kept).fast_args() is not None


def _reserialized(obj: Any, rng: random.Random) -> bytes:
    """The same JSON value written differently: spacing, key order, ASCII escapes."""
    if isinstance(obj, dict) and rng.random() < 0.5:
        items = list(obj.items())
        rng.shuffle(items)
        obj = dict(items)
    style = rng.randrange(4)
    if style == 0:
        return orjson.dumps(obj)
    if style == 1:
        return json.dumps(obj, ensure_ascii=True).encode()
    if style == 2:
        return json.dumps(obj, ensure_ascii=False, indent=1).encode()
    return b" \n" + json.dumps(obj, ensure_ascii=False, separators=(" ,", ": ")).encode() + b"\t"


@settings(max_examples=600, deadline=None)
@given(objects(), CONFIGS, st.sampled_from(["Pod", "Deployment"]), st.randoms())
def test_generated_objects_agree_with_the_python_shaper(
    obj: dict[str, Any], config: StripConfig, kind: str, rng: random.Random
) -> None:
    shaper = KindShaper("apps" if kind == "Deployment" else "", "v1", kind, config)
    assert_agrees(shaper, _reserialized(obj, rng))


def test_corrupted_objects_agree_or_are_left_to_python() -> None:
    rng = random.Random(11)
    pods = [o for o in simulator_objects(1, 400) if o["kind"] in ("Pod", "Deployment")]
    answered = 0
    for _ in range(3_000):
        obj = rng.choice(pods)
        raw = bytearray(orjson.dumps(obj))
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(raw))
            action = rng.randrange(4)
            if action == 0:
                raw[at] = rng.randrange(256)
            elif action == 1:
                raw[at] = rng.choice(b'{}[]",:\\ 0-e.nul\xc3\xa9\x00')
            elif action == 2:
                del raw[at : at + rng.randrange(1, 40)]
            else:
                raw[at:at] = rng.choice([b'"', b",", b"{}", b"\\u00e9", b"\\ud800", b'"x":1,'])
        answered += assert_agrees(shaper_of(obj), bytes(raw))
    assert answered > 100  # some corruptions stay valid (inside values, say)


@pytest.mark.parametrize(
    "served",
    [
        b'{"metadata":{"name":"a\\u0062","uid":"u"}}',  # escaped name
        b'{"metadata":{"n\\u0061me":"a"}}',  # escaped key
        b'{"metadata":{"name":"a","name":"b"}}',  # duplicate key
        b'{"metadata":{"name":"a"},"metadata":{"name":"b"}}',
        b'{"metadata":{"name":"a","annotations":{"x":1}}}',  # not a string
        b'{"metadata":{"name":"a","annotations":"x"}}',
        b'{"metadata":{"name":"a","annotations":{"x":"\\u003c"}}}',  # re-encodes differently
        b'{"metadata":{"name":"a","labels":{"x":true}}}',
        b'{"metadata":{"name":"a","labels":[]}}',
        b'{"metadata":{"name":"a","ownerReferences":[{"uid":7}]}}',
        b'{"metadata":{"name":"a","ownerReferences":[1]}}',
        b'{"metadata":{"name":"a","ownerReferences":[{"uid":"x","uid":"y"}]}}',
        b'{"metadata":{"name":"a","resourceVersion":7}}',
        b'{"metadata":{"name":"a","uid":["u"]}}',
        b'{"metadata":{"name":""}}',
        b'{"metadata":{"name":7}}',
        b'{"metadata":[]}',
        b'{"spec":{}}',
        b"[]",
        b'{"metadata":{"name":"a"},"spec":"\\ud800"}',  # an escaped lone surrogate
        b'{"metadata":{"name":"a"},"spec":"\xed\xa0\x80"}',  # an encoded one
        b'{"metadata":{"name":"a"},"spec":"\xff"}',  # not UTF-8
        b'{"metadata":{"name":"a"},"spec":' + b"[" * 70 + b"]" * 70 + b"}",  # deep
        b'{"metadata":{"name":"a"}} x',
        b'{"metadata":{"name":"a"},"spec":01}',
    ],
)
def test_what_the_c_code_leaves_to_python(served: bytes) -> None:
    shaper = KindShaper("", "v1", "Pod", StripConfig())
    assert c_outcome(shaper, served) is None


def test_annotations_dropped_kept_or_left_as_served() -> None:
    shaper = KindShaper("", "v1", "Pod", StripConfig())
    only_dropped = orjson.dumps(
        {"metadata": {"name": "a", "annotations": {LAST_APPLIED: '{"x":"\\"y\\""}'}}}
    )
    fast = c_outcome(shaper, only_dropped)
    assert isinstance(fast, tuple)
    assert fast[0] == b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}'
    empty_with_space = b'{"metadata":{"name":"a","annotations":{ }, "namespace":null}}'
    fast = c_outcome(shaper, empty_with_space)
    assert isinstance(fast, tuple)
    assert fast[:2] == (
        b'{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{ },"name":"a",'
        b'"namespace":null}}',
        "",
    )
    assert fast == python_outcome(shaper, empty_with_space)
    sorted_ = orjson.dumps(
        {
            "metadata": {
                "name": "a",
                "annotations": {"z": "1", LEADER_ANNOTATION: "x", "moniker.spinnaker.io/application": "shop", "a": "é"},
                "ownerReferences": [{"uid": None}, {"uid": ""}, {"uid": "o1", "kind": "R"}],
            }
        }
    )  # fmt: skip
    fast = c_outcome(shaper, sorted_)
    assert fast == python_outcome(shaper, sorted_)
    assert isinstance(fast, tuple)
    assert (
        b'"annotations":{"a":"\xc3\xa9","moniker.spinnaker.io/application":"shop","z":"1"}'
        in (fast[0])
    )
    assert fast[6:] == (("o1",), "shop")
    kept = KindShaper("", "v1", "Pod", StripConfig(keep_last_applied=True))
    assert c_outcome(kept, only_dropped) is None  # kept, its escapes are re-encoded by Python
    plain_kept = orjson.dumps({"metadata": {"name": "a", "annotations": {LAST_APPLIED: "{}"}}})
    assert assert_agrees(kept, plain_kept)
    assert LAST_APPLIED.encode() in python_outcome(kept, plain_kept)[0]  # type: ignore[index]


class ListSink:
    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    def submit(self, record: OutRecord) -> None:
        self.records.append(record)


def make_emitter(ref: KindRef) -> tuple[KindEmitter, ListSink]:
    sink = ListSink()
    ledger = Ledger(3)
    emitter = KindEmitter(
        ref,
        ledger.kind(ref.group_kind),
        RecordFactory("c1", 3, "s1"),
        sink,
        StripConfig(),
        NamespaceFilter(),
        ProducerMetrics(CollectorRegistry()).for_kind("c1", ref.label),
    )
    return emitter, sink


def _emit(objs: list[dict[str, Any]], ref: KindRef, fast: bool) -> list[tuple[Any, ...]]:
    emitter, sink = make_emitter(ref)
    if not fast:
        emitter._fast = None
    emitter.begin_relist()
    for obj in objs:
        emitter.listed(orjson.dumps(obj), 0.0)
    emitter.end_relist()
    # The event time is the clock's: compare the records without it.
    out = []
    for r in sink.records:
        value = None
        if r.value is not None:
            delta = decode(r.value)
            value = (delta.op, delta.key, delta.uid, delta.resource_version, delta.seq,
                     delta.labels, delta.owners, delta.app, delta.body)  # fmt: skip
        out.append((r.partition, r.key, value, r.op))
    return out


def test_the_emitter_sends_the_same_records_with_and_without_the_c_shaper() -> None:
    pods = [o for o in simulator_objects(2, 600) if o["kind"] == "Pod"]
    ref = KindRef("", "v1", "Pod", "pods", True)
    with_c = _emit(pods, ref, fast=True)
    assert len(with_c) > len(pods)  # markers and every Pod
    assert with_c == _emit(pods, ref, fast=False)


def c_event(shaper: KindShaper, line: bytes | memoryview) -> Any:
    args = shaper.fast_args()
    assert args is not None
    return shape_event(line, *args)


def test_a_watch_event_is_its_type_and_its_object_shaped() -> None:
    for obj in simulator_objects(1, 400):
        shaper = shaper_of(obj)
        if shaper.fast_args() is None:
            continue
        for event_type in ("ADDED", "MODIFIED", "DELETED"):
            line = orjson.dumps({"type": event_type, "object": obj})
            assert c_event(shaper, line) == (event_type, *c_outcome(shaper, orjson.dumps(obj)))  # type: ignore[misc]
            spaced = (
                b' { "object" : '
                + orjson.dumps(obj)
                + b' , "type":"'
                + event_type.encode()
                + b'" }\n'
            )
            assert c_event(shaper, spaced) == c_event(shaper, line)
            assert c_event(shaper, memoryview(b"xx" + line)[2:]) == c_event(shaper, line)  # fmt: skip


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"BOOKMARK","object":{"metadata":{"name":"a","resourceVersion":"5"}}}',
        b'{"type":"ERROR","object":{"metadata":{"name":"a"},"code":410}}',
        b'{"type":"ADDED"}',
        b'{"object":{"metadata":{"name":"a"}}}',
        b'{"type":"ADDED","type":"DELETED","object":{"metadata":{"name":"a"}}}',
        b'{"type":"ADDED","object":{"metadata":{"name":"a"}},"object":{"metadata":{"name":"b"}}}',
        b'{"type":"ADDED","object":{"metadata":{"name":"a"}},"extra":1}',
        b'{"type":"\\u0041DDED","object":{"metadata":{"name":"a"}}}',
        b'{"type":7,"object":{"metadata":{"name":"a"}}}',
        b'{"type":"ADDED","object":{"metadata":{"name":"a"}}} x',
        b'{"type":"ADDED","object":{"metadata":{"name":"a"}}',
        b'{"type":"ADDED","object":{"metadata":{"name":""}}}',
        b'{"type":"ADDED","object":null}',
        b"{}",
        b"",
    ],
)
def test_what_the_c_event_shaper_leaves_to_python(line: bytes) -> None:
    assert c_event(KindShaper("", "v1", "Pod", StripConfig()), line) is None


def _emit_events(events: list[tuple[str, dict[str, Any]]], fast: bool) -> list[tuple[Any, ...]]:
    emitter, sink = make_emitter(KindRef("", "v1", "Pod", "pods", True))
    for event_type, obj in events:
        line = orjson.dumps({"type": event_type, "object": obj})
        args = emitter.fast_args
        shaped = shape_event(line, *args) if fast and args is not None else None
        if shaped is not None:
            emitter.event_shaped(shaped, 0.0)
        else:
            emitter.event(event_type, orjson.dumps(obj), 0.0)
    return [
        (r.partition, r.key, r.op, None if r.value is None else decode(r.value).body,
         None if r.value is None else decode(r.value).uid)
        for r in sink.records
    ]  # fmt: skip


def test_the_emitter_sends_the_same_records_for_events_shaped_in_c() -> None:
    pods = [o for o in simulator_objects(1, 600) if o["kind"] == "Pod"]
    events: list[tuple[str, dict[str, Any]]] = [("ADDED", p) for p in pods]
    events += [("MODIFIED", p) for p in pods[:50]]  # unchanged: nothing sent
    for p in pods[:100:2]:
        changed = json.loads(json.dumps(p))
        changed["status"]["phase"] = "Failed"
        changed["metadata"]["resourceVersion"] = "99"
        events.append(("MODIFIED", changed))
    events += [("DELETED", p) for p in pods[::7]]
    events += [("DELETED", p) for p in pods[::7]]  # unknown by then: nothing sent
    with_c = _emit_events(events, fast=True)
    assert len(with_c) == len(pods) + 50 + 2 * len(pods[::7])
    assert with_c == _emit_events(events, fast=False)


# -- fingerprint: keyed SipHash-1-3 ----------------------------------------------------------


def _cpython_hash_key(seed: int) -> bytes:
    """The SipHash key CPython derives from PYTHONHASHSEED=seed (Python/bootstrap_hash.c
    lcg_urandom: the first 16 bytes of its hash secret are k0 and k1)."""
    x, out = seed, bytearray()
    for _ in range(16):
        x = (x * 214013 + 2531011) & 0xFFFFFFFF
        out.append((x >> 16) & 0xFF)
    return bytes(out)


def test_fingerprint_is_cpythons_siphash13_under_the_same_key() -> None:
    # An independent implementation: CPython hashes bytes with SipHash-1-3 keyed by its
    # hash secret, which a fixed PYTHONHASHSEED makes known.
    rng = random.Random(5)
    messages = [rng.randbytes(n) for n in [*range(1, 70), 255, 1000, 4099]]
    code = "import sys\nfor line in sys.stdin: print(hash(bytes.fromhex(line.strip())))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        input="".join(m.hex() + "\n" for m in messages),
        env={**os.environ, "PYTHONHASHSEED": "4242"},
        capture_output=True,
        text=True,
        check=True,
    )
    expected = [int(line) for line in done.stdout.split()]
    key = _cpython_hash_key(4242)
    for message, want in zip(messages, expected, strict=True):
        ours = int.from_bytes(fingerprint(message, b"", key), "little", signed=True)
        assert (-2 if ours == -1 else ours) == want, len(message)


def test_fingerprint_hashes_the_body_as_if_the_member_were_not_there() -> None:
    rng = random.Random(6)
    key = rng.randbytes(16)
    member = b',"resourceVersion":"123"'
    for size in range(0, 40):  # every alignment of the cut within a word
        for at in range(size + 1):
            rest = rng.randbytes(size)
            body = rest[:at] + member + rest[at:]
            assert fingerprint(body, member, key) == fingerprint(rest, b"", key)
    body = b'{"a":1,"resourceVersion":"123","b":"x,\\"resourceVersion\\":\\"123\\""}'
    first = body.index(member)
    assert fingerprint(body, member, key) == fingerprint(
        body[:first] + body[first + len(member) :], b"", key
    )  # only the first occurrence is cut
    assert fingerprint(b"no member here", member, key) == fingerprint(b"no member here", b"", key)


def test_fingerprint_depends_on_the_key_and_checks_its_size() -> None:
    body = b'{"metadata":{"name":"a"}}'
    assert fingerprint(body, b"", bytes(16)) != fingerprint(body, b"", bytes(15) + b"\x01")
    assert len(fingerprint(body, b"", bytes(16))) == 8
    with pytest.raises(ValueError, match="16 bytes"):
        fingerprint(body, b"", bytes(8))
