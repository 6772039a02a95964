"""JSON log lines: written at once outside an event loop, once per loop pass inside one."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from switchyard.runtime.logging import JsonFormatter, LineHandler, request_id_var


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
    handler = LineHandler(stream)
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
