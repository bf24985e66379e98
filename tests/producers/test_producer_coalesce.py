"""Coalescer: requests made together are served by one batched call (no broker)."""

from __future__ import annotations

import asyncio

import pytest

from producers.coalesce import Coalescer
from producers.errors import ProducerError


class Doubler:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.fail = fail
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(items)
        await self.release.wait()
        if self.fail:
            raise ProducerError("broker says no")
        return [2 * i for i in items]


async def test_requests_made_together_share_one_call_and_get_their_own_answer() -> None:
    run = Doubler()
    c: Coalescer[int, int] = Coalescer(run, window_s=0.01)
    results = await asyncio.gather(*(c.request(i) for i in range(50)))
    assert results == [2 * i for i in range(50)]
    assert run.calls == [list(range(50))]
    assert c.batches == 1
    assert await c.request(7) == 14  # a later request: a batch of its own
    assert run.calls[1] == [7]


async def test_a_failed_batch_fails_every_request_and_the_next_one_runs_again() -> None:
    run = Doubler(fail=True)
    c: Coalescer[int, int] = Coalescer(run, window_s=0.01)
    results = await asyncio.gather(*(c.request(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, ProducerError) for r in results)
    run.fail = False
    assert await c.request(5) == 10
    assert len(run.calls) == 2


async def test_max_batch_flushes_at_once_and_the_rest_waits_for_the_next_batch() -> None:
    run = Doubler()
    c: Coalescer[int, int] = Coalescer(run, window_s=30.0, max_batch=4)
    results = await asyncio.wait_for(asyncio.gather(*(c.request(i) for i in range(8))), 5)
    assert results == [2 * i for i in range(8)]
    assert run.calls == [[0, 1, 2, 3], [4, 5, 6, 7]]


async def test_a_cancelled_request_is_left_out_and_close_cancels_what_waits() -> None:
    run = Doubler()
    c: Coalescer[int, int] = Coalescer(run, window_s=0.05)
    gone = asyncio.create_task(c.request(1))
    kept = asyncio.create_task(c.request(2))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == 4
    assert run.calls == [[2]]
    run.release.clear()  # the next batch hangs in the "broker"
    hanging = asyncio.create_task(c.request(3))
    while len(run.calls) < 2:  # noqa: ASYNC110 (polling the fake's call log)
        await asyncio.sleep(0.01)
    await c.close()
    with pytest.raises(asyncio.CancelledError):
        await hanging
