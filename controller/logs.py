"""Logs: the controller's log format, JSON lines on stderr, and the one function that sets it up.

Callers: ``controller.cli`` (``tidegate run``) calls ``configure_logging`` once
at start. Library code only uses ``logging.getLogger("tidegate.…")``; nothing
else touches handlers. It must not log secrets: messages are the callers' and
are already capped by them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

HANDLER_NAME = "tidegate-json"
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
LEVELS = ("debug", "info", "warning", "error")
CHATTY_LOGGERS = ("kopf.objects", "httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str | int = "info", stream: TextIO | None = None) -> None:
    """Sends every log record at ``level`` or above to ``stream`` (stderr) as JSON lines.

    Idempotent: a second call replaces the handler it installed before.

    Raises:
        ValueError: ``level`` is not one of debug, info, warning, error.
    """
    if isinstance(level, str):
        if level.lower() not in LEVELS:
            raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
        number = int(logging.getLevelName(level.upper()))
    else:
        number = level
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(number)
    quiet = logging.DEBUG if number <= logging.DEBUG else logging.WARNING
    for chatty in CHATTY_LOGGERS:  # a line per watch event or HTTP request
        logging.getLogger(chatty).setLevel(quiet)
