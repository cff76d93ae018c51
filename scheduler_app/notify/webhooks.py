"""Webhooks to SCHEDULER_WEBHOOK_URL, signed per Standard Webhooks.

``POST`` of ``{"type", "timestamp", "data": {...}}`` with ``webhook-id`` (the
outbox row's id: the same on every retry, for deduplication),
``webhook-timestamp`` (this attempt's Unix time) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under the base64-decoded
secret), signed by the ``standardwebhooks`` package. Any 2xx is success; 410
Gone disables the endpoint; anything else, a redirect or no answer within 10
seconds is retried.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from standardwebhooks import Webhook

from .. import __version__
from ..settings import Settings
from . import DeliveryError, EndpointGone
from .outbox import parse_utc

TIMEOUT = 10


def body(snap: dict) -> bytes:
    """The event's JSON, the same bytes on every attempt."""
    tz = ZoneInfo(snap["rep_timezone"])
    confirmed = snap["status"] == "confirmed"
    slot = snap["slot"]
    payload = {
        "type": snap["event"],
        "timestamp": snap["at"],
        "data": {
            "reference": snap["reference"],
            "status": snap["status"],
            "sequence": snap["sequence"],
            "slot": {
                "id": slot["id"],
                "start_time": parse_utc(slot["start"]).astimezone(tz).isoformat(),
                "end_time": parse_utc(slot["end"]).astimezone(tz).isoformat(),
                "is_booked": confirmed,
                "booked_by_email": snap["email"] if confirmed else None,
            },
            "email": snap["email"],
            "name": snap.get("name"),
            "notes": snap.get("notes"),
            "source": snap.get("source"),
        },
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to retry, not to follow (the body would be dropped)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def headers(webhook_id: str, data: bytes, secret: str, now: float | None = None) -> dict:
    """The Standard Webhooks headers of one attempt."""
    moment = datetime.fromtimestamp(int(time.time() if now is None else now), UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, moment, data.decode()),
    }


def send(outbox_id: int, snap: dict, settings: Settings) -> None:
    """POST the event to SCHEDULER_WEBHOOK_URL as it is now (a corrected URL gets
    the messages still pending); raise ``EndpointGone`` on 410, ``DeliveryError``
    on any other failure."""
    if not settings.webhook_url:
        raise DeliveryError("SCHEDULER_WEBHOOK_URL is not set")
    data = body(snap)
    request = urllib.request.Request(
        settings.webhook_url, data=data, method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": f"scheduler-app/{__version__}",
            **headers(str(outbox_id), data, settings.webhook_secret),
        },
    )
    try:
        with _opener.open(request, timeout=TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"no answer: {reason}") from exc  # the URL is not repeated
    if 200 <= status < 300:
        return
    if status == 410:
        raise EndpointGone("the endpoint answered 410 Gone")
    raise DeliveryError(f"the endpoint answered {status}")
