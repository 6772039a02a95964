"""`IdleTimeout`: fires only after a whole limit without items, changes bound on the fly, and
leaves other cancellations alone."""

from __future__ import annotations

import asyncio

import pytest

from switchyard.runtime.timers import IdleTimeout, wait_within


async def test_items_in_time_never_fire() -> None:
    async with IdleTimeout(0.2) as idle:
        for _ in range(8):  # 0.4 s in all, but never 0.2 s between two items
            await asyncio.sleep(0.05)
            idle.touch()


async def test_fires_after_the_limit_without_items() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one_item_then_silence() -> None:
        async with IdleTimeout(0.3) as idle:
            await asyncio.sleep(0.1)
            idle.touch()
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await one_item_then_silence()
    elapsed = loop.time() - started
    assert 0.38 < elapsed < 1.0  # 0.1 s, then the whole 0.3 s limit from the last item


async def test_bound_changes_after_the_first_item() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def tighter_after_first() -> None:
        async with IdleTimeout(2.0) as idle:  # a generous first-item bound
            await asyncio.sleep(0.05)
            idle.touch(0.1)  # then a tight one, re-armed at once
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await tighter_after_first()
    assert loop.time() - started < 1.0
    async with IdleTimeout(0.1) as idle:  # a longer bound after the first item is honoured
        idle.touch(0.5)
        await asyncio.sleep(0.3)


async def test_an_outside_cancel_stays_a_cancel() -> None:
    async def work() -> None:
        async with IdleTimeout(10):
            await asyncio.sleep(5)

    task = asyncio.create_task(work())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nested_in_an_outer_timeout() -> None:

    async def outer_deadline_first() -> None:
        async with asyncio.timeout(0.1):  # the outer deadline passes first: its TimeoutError
            async with IdleTimeout(10):
                await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await outer_deadline_first()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_wait_within_returns_what_arrives_in_time() -> None:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.02, waiter.set_result, "ok")
    assert await wait_within(waiter, 1.0) == "ok"


async def test_wait_within_times_out_and_fails_the_future() -> None:
    waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await wait_within(waiter, 0.05)
    assert 0.04 <= asyncio.get_running_loop().time() - started < 1.0
    assert waiter.done()
    with pytest.raises(asyncio.InvalidStateError):
        waiter.set_result("late")


async def test_wait_within_leaves_a_cancel_a_cancel() -> None:
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(wait_within(waiter, 0.05))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.08)  # past the limit: the cancelled timer does nothing
    assert waiter.cancelled()
