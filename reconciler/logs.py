"""Structured JSON logs: one line per event, every text through the one sanitizer.

Stages log with the standard library (``logging.getLogger("gitfirm.<stage>")``) and pass
context as ``extra={"device": ..., "rollout": ..., "revision": ...}``. The daemon installs
:class:`JsonFormatter` with the secrets it resolved, so no key reaches a log line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
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
        self._secrets = tuple({*self._secrets, *secrets})

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


def configure_json_logging(
    secrets: Iterable[str] = (), *, stream: IO[str] | None = None, level: int = logging.INFO
) -> JsonFormatter:
    """Send every ``gitfirm.*`` log record to ``stream`` as JSON; returns the formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter(secrets)
    handler.setFormatter(formatter)
    logger = logging.getLogger("gitfirm")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return formatter
