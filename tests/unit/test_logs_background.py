"""``gitfirm run`` formats and writes its log lines in a thread of its own, in order.

On the event loop's thread every line's write waited for the GIL while a worker thread
was busy (docs/scaling.md); the lines must still come out whole, in order and redacted,
and closing the handler (as ``logging.shutdown`` does at exit) writes what is queued. A
``logging.config`` call closes every handler and goes on logging (uvicorn makes one at
start): lines logged after it must still be written.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import threading
from collections.abc import Iterator

import pytest

from reconciler.logs import configure_json_logging


class _Stream(io.StringIO):
    """Remembers which threads wrote to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[int] = set()

    def write(self, text: str) -> int:
        self.writers.add(threading.get_ident())
        return super().write(text)


@pytest.fixture
def gitfirm_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("gitfirm")
    kept = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = kept


def test_lines_are_written_by_another_thread_in_order_and_redacted(
    gitfirm_logger: logging.Logger,
) -> None:
    stream = _Stream()
    formatter = configure_json_logging(stream=stream, background=True)
    formatter.add_secrets(["s3cr3t-value"])
    log = logging.getLogger("gitfirm.test")
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    for i in range(50):
        log.info("line %d with s3cr3t-value", i, extra={"device": f"r{i}"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    gitfirm_logger.handlers[0].close()  # what logging.shutdown does at exit

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["msg"], x["device"]) for x in lines[:50]] == [
        (f"line {i} with ***", f"r{i}") for i in range(50)
    ]
    assert lines[50]["msg"] == "failed"
    assert "ValueError: boom" in lines[50]["exception"]
    assert len(lines) == 51
    assert stream.writers and threading.get_ident() not in stream.writers
