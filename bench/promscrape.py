"""Stage latencies from the pipeline's own Prometheus histograms.

The probes measure a change end to end; the consumer and the producers already count
where their share goes (``kubedelta_consumer_commit_delay_seconds``: oldest record of a
WriteBatch from its Kafka timestamp to the commit; ``kubedelta_producer_ack_latency_seconds``:
oldest record of a Kafka batch from its observation to the broker's acknowledgement).
Two scrapes, before and after a phase, subtract to that phase's histogram; its
quantiles are interpolated within buckets the way Prometheus' ``histogram_quantile``
does, so they are as coarse as the buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.errors import BenchError


class ScrapeError(BenchError):
    """A /metrics page could not be read or parsed."""


@dataclass(frozen=True, slots=True)
class Histogram:
    """One histogram, summed over its label sets: cumulative counts per upper bound."""

    bounds: tuple[float, ...]  #: upper bounds ("le"), ascending, +Inf last
    counts: tuple[float, ...]  #: cumulative observations at or below each bound
    total: float  #: sum of the observed values (seconds, for the histograms used here)

    @property
    def count(self) -> float:
        return self.counts[-1] if self.counts else 0.0

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations made after ``earlier`` (same bounds)."""
        if earlier.bounds != self.bounds:
            raise ScrapeError("histograms with different buckets cannot be subtracted")
        return Histogram(
            self.bounds,
            tuple(a - b for a, b in zip(self.counts, earlier.counts, strict=True)),
            self.total - earlier.total,
        )

    def quantile(self, q: float) -> float:
        """``histogram_quantile(q)``: NaN without observations; the highest finite bound
        when the quantile falls in the +Inf bucket."""
        if not 0.0 <= q <= 1.0:
            raise ScrapeError(f"quantile must be in [0, 1], got {q}")
        if self.count <= 0:
            return math.nan
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in zip(self.bounds, self.counts, strict=True):
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower_bound
                in_bucket = cumulative - lower_count
                if in_bucket <= 0:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / in_bucket
            lower_bound, lower_count = bound, cumulative
        return lower_bound

    def mean(self) -> float:
        return self.total / self.count if self.count > 0 else math.nan


def histograms(text: str, names: Iterable[str]) -> dict[str, Histogram]:
    """The named histograms of a /metrics page, each summed over its label sets; a name
    the page does not have is left out. A named counter comes back as a histogram of
    one +Inf bucket holding its value (so it subtracts the same way)."""
    wanted = set(names)
    found: dict[str, Histogram] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise ScrapeError(f"unreadable /metrics page: {exc}") from exc
    for family in families:
        if family.name not in wanted:
            continue
        if family.type == "counter":
            value = sum(s.value for s in family.samples if s.name.endswith("_total"))
            found[family.name] = Histogram((math.inf,), (value,), value)
            continue
        if family.type != "histogram":
            continue
        buckets: dict[float, float] = {}
        total = 0.0
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
        bounds = tuple(sorted(buckets))
        found[family.name] = Histogram(bounds, tuple(buckets[b] for b in bounds), total)
    return found


def merged(parts: Iterable[Histogram]) -> Histogram | None:
    """The sum of histograms with the same buckets (several producer processes)."""
    result: Histogram | None = None
    for part in parts:
        if result is None:
            result = part
            continue
        if part.bounds != result.bounds:
            raise ScrapeError("histograms with different buckets cannot be added")
        result = Histogram(
            result.bounds,
            tuple(a + b for a, b in zip(result.counts, part.counts, strict=True)),
            result.total + part.total,
        )
    return result


async def scrape(session: aiohttp.ClientSession, url: str) -> str:
    """The text of ``url`` (a /metrics page)."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
            if response.status != 200:
                raise ScrapeError(f"{url} answered {response.status}")
            return await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ScrapeError(f"cannot scrape {url}: {exc!r}") from exc


def stage_metrics(
    before: Mapping[str, Histogram], after: Mapping[str, Histogram], name: str, prefix: str
) -> dict[str, float]:
    """``<prefix>_p50_ms``/``_p95_ms``/``_p99_ms``/``_mean_ms`` and ``<prefix>_count`` of
    histogram ``name`` (seconds) between two scrapes; empty if either lacks it."""
    if name not in before or name not in after:
        return {}
    phase = after[name].minus(before[name])
    metrics = {f"{prefix}_count": phase.count}
    for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        metrics[f"{prefix}_{label}_ms"] = phase.quantile(q) * 1000
    metrics[f"{prefix}_mean_ms"] = phase.mean() * 1000
    return metrics


#: The histograms :func:`stage_histograms` reads, by the role whose pages hold them.
CONSUMER_HISTOGRAMS = (
    "kubedelta_consumer_commit_delay_seconds",
    "kubedelta_consumer_batch_records",
    "kubedelta_consumer_write_seconds",
    "kubedelta_consumer_fetch_requests",
    "kubedelta_consumer_fetch_partitions_named",
)
PRODUCER_HISTOGRAMS = ("kubedelta_producer_ack_latency_seconds",)


async def stage_histograms(urls: Mapping[str, Iterable[str]]) -> dict[str, Histogram]:
    """The consumer's and the producers' stage histograms now (producers summed), from
    ``urls`` by role ("consumer", "producers"). ScrapeError if a page cannot be read."""
    found: dict[str, Histogram] = {}
    async with aiohttp.ClientSession() as session:
        for url in urls.get("consumer", ()):
            found.update(histograms(await scrape(session, url), CONSUMER_HISTOGRAMS))
        per_producer = [
            histograms(await scrape(session, url), PRODUCER_HISTOGRAMS)
            for url in urls.get("producers", ())
        ]
    for name in PRODUCER_HISTOGRAMS:
        total = merged(h[name] for h in per_producer if name in h)
        if total is not None:
            found[name] = total
    return found


def phase_stage_metrics(
    before: Mapping[str, Histogram], after: Mapping[str, Histogram], phase_s: float
) -> dict[str, float]:
    """The stage metrics of a phase between two :func:`stage_histograms`:
    ``consumer_commit_delay_*`` and ``producer_ack_*`` latencies (ms),
    ``consumer_batch_records_mean``, ``consumer_write_busy`` (share of the phase's
    wall time the consumer spent planning and committing), ``consumer_fetches_per_s``
    and ``consumer_fetch_partitions_per_request`` (what each fetch request named)."""
    metrics = stage_metrics(
        before, after, "kubedelta_consumer_commit_delay_seconds", "consumer_commit_delay"
    )
    metrics.update(
        stage_metrics(before, after, "kubedelta_producer_ack_latency_seconds", "producer_ack")
    )
    batches = "kubedelta_consumer_batch_records"
    if batches in before and batches in after:
        metrics["consumer_batch_records_mean"] = after[batches].minus(before[batches]).mean()
    writes = "kubedelta_consumer_write_seconds"
    if writes in before and writes in after and phase_s > 0:
        spent = after[writes].minus(before[writes]).total
        metrics["consumer_write_busy"] = spent / phase_s
    fetches, named = (
        "kubedelta_consumer_fetch_requests",
        "kubedelta_consumer_fetch_partitions_named",
    )
    if all(name in before and name in after for name in (fetches, named)) and phase_s > 0:
        requests = after[fetches].minus(before[fetches]).count
        metrics["consumer_fetches_per_s"] = requests / phase_s
        if requests > 0:
            partitions = after[named].minus(before[named]).count
            metrics["consumer_fetch_partitions_per_request"] = partitions / requests
    return metrics
