"""Structured JSON logs: one line per event, every text through the one sanitizer.

Stages log with the standard library (``logging.getLogger("gitfirm.<stage>")``) and pass
context as ``extra={"device": ..., "rollout": ..., "revision": ...}``. The daemon installs
:class:`JsonFormatter` with the secrets it resolved, so no key reaches a log line.

``gitfirm run`` formats and writes in a background thread (``background=True``): on the
event loop's thread a log line's write waited for the GIL whenever a worker thread was
busy, and 100 devices starting together log 200 lines in one turn of the loop.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import IO, Any

from reconciler.sanitize import redact

__all__ = ["CONTEXT_FIELDS", "JsonFormatter", "configure_json_logging"]

CONTEXT_FIELDS = (
    "event", "device", "rollout", "revision", "phase", "reason", "policy", "image", "loop",
)  # fmt: skip


class JsonFormatter(logging.Formatter):
    """Formats a record as one sanitized JSON object with sorted keys."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Redact these values too (secrets resolved after start-up)."""
        known = set(self._secrets)
        new = {s for s in secrets if s not in known}
        if new:  # the same tuple otherwise: the sanitizer indexes a large one once
            self._secrets = tuple(known | new)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        text = json.dumps(entry, sort_keys=True, default=str)
        return redact(text, self._secrets)


class _Background(QueueHandler):
    """Hands records to a :class:`QueueListener` thread that formats and writes them."""

    def __init__(self, handler: logging.Handler) -> None:
        self._records: queue.Queue[logging.LogRecord] = queue.Queue()
        super().__init__(self._records)
        self.listener = QueueListener(self._records, handler)
        self.listener.start()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The message is fixed now (its arguments may change later); the JSON, the
        # redaction and the exception text are made in the listener's thread.
        record.msg = record.getMessage()
        record.args = None
        return record

    def flush(self) -> None:
        """Return once every queued record is written (``logging.shutdown`` at exit)."""
        self._records.join()

    def close(self) -> None:
        """Write what is queued. The listener keeps running: ``logging.config`` closes
        every handler when it is configured (uvicorn does at start) and goes on using
        loggers; the thread is a daemon thread and ends with the process."""
        self.flush()
        super().close()


def configure_json_logging(
    secrets: Iterable[str] = (),
    *,
    stream: IO[str] | None = None,
    level: int = logging.INFO,
    background: bool = False,
) -> JsonFormatter:
    """Send every ``gitfirm.*`` log record to ``stream`` as JSON; returns the formatter.

    With ``background``, records are formatted and written in a thread of their own, in
    order; closing the handler (at exit) writes what is still queued.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter(secrets)
    handler.setFormatter(formatter)
    logger = logging.getLogger("gitfirm")
    for old in logger.handlers:
        if isinstance(old, _Background):
            old.close()
            old.listener.stop()
    logger.handlers[:] = [_Background(handler) if background else handler]
    logger.setLevel(level)
    logger.propagate = False
    return formatter
