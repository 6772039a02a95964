"""JSON log lines: written at once outside an event loop, once per loop pass inside one."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from switchyard.runtime.logging import (
    JsonFormatter,
    LineHandler,
    log_info,
    request_id_var,
    setup_logging,
)


class CountingStream(io.StringIO):
    """A text stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def logged() -> tuple[logging.Logger, CountingStream, LineHandler]:
    stream = CountingStream()
    handler = LineHandler(stream, delay=0)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger(f"test.lines.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers[:] = [handler]
    return logger, stream, handler


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_outside_a_loop_each_line_is_written_at_once(
    logged: tuple[logging.Logger, CountingStream, LineHandler],
) -> None:
    logger, stream, _ = logged
    logger.info("one", extra={"n": 1})
    assert [e["msg"] for e in lines(stream)] == ["one"]
    logger.warning("two")
    entries = lines(stream)
    assert [e["msg"] for e in entries] == ["one", "two"]
    assert entries[0]["n"] == 1
    assert entries[1]["level"] == "warning"
    assert stream.writes == 2


async def test_in_a_loop_the_lines_of_one_pass_leave_in_one_write(
    logged: tuple[logging.Logger, CountingStream, LineHandler],
) -> None:
    logger, stream, _ = logged
    request_id_var.set("req-1")
    logger.info("first")
    logger.info("second")
    assert stream.getvalue() == ""  # nothing on the request's path
    await asyncio.sleep(0)  # the loop's next pass
    entries = lines(stream)
    assert [e["msg"] for e in entries] == ["first", "second"]
    assert all(e["request_id"] == "req-1" for e in entries)
    assert stream.writes == 1
    logger.info("third")
    await asyncio.sleep(0)
    assert [e["msg"] for e in lines(stream)] == ["first", "second", "third"]


async def test_with_a_delay_the_lines_of_that_time_leave_in_one_write(
    logged: tuple[logging.Logger, CountingStream, LineHandler],
) -> None:
    logger, stream, handler = logged
    handler.delay = 0.05
    logger.info("first")
    await asyncio.sleep(0.01)  # passes of the loop go by: the line waits
    logger.info("second")
    await asyncio.sleep(0.01)
    assert stream.getvalue() == ""
    await asyncio.sleep(0.06)
    assert [e["msg"] for e in lines(stream)] == ["first", "second"]
    assert stream.writes == 1
    logger.info("third")  # a new window
    assert stream.writes == 1
    await asyncio.sleep(0.08)
    assert [e["msg"] for e in lines(stream)] == ["first", "second", "third"]
    assert stream.writes == 2


def test_a_line_left_by_a_finished_loop_is_not_held_back(
    logged: tuple[logging.Logger, CountingStream, LineHandler],
) -> None:
    logger, stream, handler = logged

    loop = asyncio.new_event_loop()

    def log_and_stop() -> None:
        logger.info("last words")
        loop.stop()  # the loop ends before its next pass, where the write was due

    loop.call_soon(log_and_stop)
    loop.run_forever()
    loop.close()
    assert stream.getvalue() == ""
    logger.info("after")  # no loop now: written at once, with what waited
    assert [e["msg"] for e in lines(stream)] == ["last words", "after"]

    async def in_a_new_loop() -> None:
        logger.info("new loop")
        await asyncio.sleep(0)

    asyncio.run(in_a_new_loop())
    assert [e["msg"] for e in lines(stream)][-1] == "new loop"
    handler.flush()


def test_flush_writes_what_waits(
    logged: tuple[logging.Logger, CountingStream, LineHandler],
) -> None:
    logger, stream, handler = logged

    async def log_only() -> None:
        logger.info("pending")
        handler.flush()  # as logging.shutdown does at exit
        assert [e["msg"] for e in lines(stream)] == ["pending"]

    asyncio.run(log_only())


@pytest.fixture
def installed() -> Iterator[tuple[logging.Logger, CountingStream]]:
    """`setup_logging`'s handler on the root logger, writing to a stream of ours."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("svc", "INFO")
    stream = CountingStream()
    handler = root.handlers[0]
    assert isinstance(handler, LineHandler)
    handler.stream = stream
    yield logging.getLogger("switchyard.test.fast"), stream
    root.handlers[:], level = saved
    root.setLevel(level)


def without_ts(entry: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in entry.items() if k != "ts"}


def test_log_info_writes_the_line_logger_info_would(
    installed: tuple[logging.Logger, CountingStream],
) -> None:
    logger, stream = installed
    fields: dict[str, Any] = {"model": "m", "chunks": 3, "ms": 1.5, "outcome": "ok"}
    token = request_id_var.set("req-1")
    try:
        logger.info("generation done", extra=fields)
        log_info(logger, "generation done", fields)
    finally:
        request_id_var.reset(token)
    slow, fast = lines(stream)
    assert without_ts(fast) == without_ts(slow)
    assert fast["request_id"] == "req-1"
    assert str(fast["ts"])[:16] == str(slow["ts"])[:16]  # the same minute, same shape
    assert len(str(fast["ts"])) == len(str(slow["ts"]))


def test_log_info_leaves_other_routes_to_logging(
    installed: tuple[logging.Logger, CountingStream], caplog: pytest.LogCaptureFixture
) -> None:
    """With another handler on the way (here pytest's), the line goes through logging: both
    receive it."""
    logger, stream = installed
    with caplog.at_level(logging.INFO, logger=logger.name):
        log_info(logger, "seen twice", {"n": 1})
    assert [r.getMessage() for r in caplog.records] == ["seen twice"]
    assert caplog.records[0].n == 1  # type: ignore[attr-defined]
    assert [e["msg"] for e in lines(stream)] == ["seen twice"]


def test_log_info_respects_the_level(installed: tuple[logging.Logger, CountingStream]) -> None:
    logger, stream = installed
    logger.setLevel(logging.WARNING)
    try:
        log_info(logger, "hidden", {})
    finally:
        logger.setLevel(logging.NOTSET)
    assert lines(stream) == []
