"""Log lines for people (text, the default) or for journald and log shippers (json).

``SCHEDULER_LOG_FORMAT=json`` writes one JSON object per line: ``time``,
``level``, ``logger``, ``message``, ``request_id`` and, on the lines that have
them, the booking's ``slot_id``/``outcome``/``status``/``duration_ms``/``email``
(masked) and the access log's ``client``/``method``/``path``/``status``.

The request id of the request being served lives in a context variable, set by
``middleware.Front``; a filter copies it onto every record, so the app's lines
and uvicorn's access and error lines all carry it.

A POST /book has one line, the booking's own (``scheduler_app.booking``, with
its status and request id): uvicorn's access line for it is dropped
(``BookingAccessFilter``) rather than written beside it.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

#: The X-Request-ID of the request this code runs for; None outside requests.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

#: The request the booking log line covers (``middleware.Front`` writes it).
BOOKING_METHOD, BOOKING_PATH = "POST", "/book"

# Attributes the app passes as ``extra`` (the booking line) that the JSON lines keep.
EXTRA_FIELDS = ("slot_id", "outcome", "status", "duration_ms", "email")


class RequestIdFilter(logging.Filter):
    """Give every record a ``request_id`` attribute (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


# Paths that carry a secret (the rep's calendar feed: a capability URL, since
# calendar clients send no Authorization header): logged with the secret masked.
_SECRET_PATH = re.compile(r"^/calendar/[^/?#]*\.ics")


class SecretPathFilter(logging.Filter):
    """Mask the calendar feed's secret in the access log's path."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) \
                and len(record.args) == 5 and isinstance(record.args[2], str):
            path = _SECRET_PATH.sub("/calendar/***.ics", record.args[2])
            record.args = (*record.args[:2], path, *record.args[3:])
        return True


class BookingAccessFilter(logging.Filter):
    """Drop uvicorn's access line of a POST /book: the booking's line stands for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and args[1] == BOOKING_METHOD \
                and isinstance(args[2], str) and args[2].partition("?")[0] == BOOKING_PATH:
            return False
        return True


class TextFormatter(logging.Formatter):
    """``2026-11-20 15:00:00,123 INFO scheduler_app.booking: <message> request_id=<id>``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return line if rid is None else f"{line} request_id={rid}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for name in EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            # uvicorn's access line: (client, method, path, http version, status)
            client, method, path, _, status = record.args
            entry.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_config(fmt: str = "text") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the app and uvicorn, in ``fmt`` (text or json).

    Everything goes to stderr through one handler; uvicorn receives the same
    dict as its ``log_config`` so that each worker process configures itself alike.
    """
    formatter = {"text": TextFormatter, "json": JsonFormatter}[fmt]
    handler = ["default"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"},
                    "secret_paths": {"()": f"{__name__}.SecretPathFilter"},
                    "booking_access": {"()": f"{__name__}.BookingAccessFilter"}},
        "formatters": {"default": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id", "secret_paths"],
            }
        },
        "loggers": {
            "uvicorn": {"handlers": handler, "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": handler, "level": "INFO", "propagate": False,
                               "filters": ["booking_access"]},
            "scheduler_app": {"handlers": handler, "level": "INFO", "propagate": False},
        },
        "root": {"handlers": handler, "level": "WARNING"},
    }
