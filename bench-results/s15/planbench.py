"""Time View.plan (main-thread CPU) over 40k bench pods, fresh store, no commit."""
import random, sys, tempfile, time
from dataclasses import replace
from bench.codec import make_pod, pod_delta
from bench.consume import cluster_name
from deltas import BodyEncoding, encode, partition_for, topic_for
from store import StoreOptions, View
from store.records import SourceRecord
import gc
rng = random.Random(7)
N = int(sys.argv[2]) if len(sys.argv) > 2 else 40000
recs = []
for i in range(N):
    c = i % 64
    d = replace(pod_delta(make_pod(rng, i), BodyEncoding.JSON, i + 1), cluster=cluster_name(c), event_time_ms=1_700_000_000_000 + i)
    key = d.kafka_key()
    p = partition_for(key, 2)
    recs.append(SourceRecord(topic_for(cluster_name(c), "kdx"), p, i, key, encode(d), 1_700_000_000_000 + i))
recs.sort(key=lambda r: (r.topic, r.partition))
recs = [r._replace(offset=j) for j, r in enumerate(recs)]
gc.freeze(); gc.disable()
with tempfile.TemporaryDirectory() as d:
    from pathlib import Path
    view = View.open(Path(d), StoreOptions(topic_prefix="kdx"))
    best = 1e9
    for rep in range(int(sys.argv[3]) if len(sys.argv) > 3 else 5):
        t = time.thread_time()
        for s in range(0, N, 2000):
            view.plan(recs[s:s + 2000])
        best = min(best, time.thread_time() - t)
    view.close()
print(f"{sys.argv[1]} plan {best / N * 1e6:.2f} us/record")
