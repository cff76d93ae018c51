"""Traps for bots that stay under the limits: the honeypot field and the signed
minimum fill time.

The widget asks ``GET /form`` for a token when it shows its form: the time it
was issued, signed with SCHEDULER_FORM_SECRET (HMAC-SHA256). A booking sent
with a token younger than SCHEDULER_MIN_FILL_SECONDS is refused (422). A
booking without a token (an API client, the spec's examples) is accepted as
before, and so is one whose token is damaged or forged (logged): refusing it
would stop no bot that can leave the token out, and could refuse a real lead
(servers with different secrets). The honeypot ``website``
field is hidden from people and assistive technology: a request that fills it
is answered like a success, with nothing booked.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string
import time

import anyio

from ..db import session
from ..errors import ClientError, SlotNotFound
from ..models import TimeSlot

log = logging.getLogger("scheduler_app.protect")

HONEYPOT_FIELD = "website"
_ALPHABET = string.ascii_uppercase.replace("O", "").replace("I", "") + "23456789"


class FormRefused(ClientError):
    status = 422


class FormClock:
    """Issue and check signed form tokens: ``<issued ms>.<hmac hex>``."""

    def __init__(self, secret: str, min_seconds: float):
        self.key = secret.encode()
        self.min_seconds = min_seconds

    def _sign(self, issued: str) -> str:
        return hmac.new(self.key, b"form:" + issued.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        issued = str(int((time.time() if now is None else now) * 1000))
        return f"{issued}.{self._sign(issued)}"

    def check(self, token: str, now: float | None = None) -> bool:
        """Raise ``FormRefused`` for a token sent too soon; False for a damaged or
        forged one (taken as no token), True for a good one."""
        issued, _, signature = token.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(signature, self._sign(issued)):
            log.info("A form token that is not ours (damaged, forged, or another secret): "
                     "taken as none")
            return False
        elapsed = (time.time() if now is None else now) - int(issued) / 1000
        if elapsed < self.min_seconds:
            raise FormRefused(f"The form was sent too quickly (in {max(elapsed, 0):.1f} s); "
                              f"wait {self.min_seconds:g} seconds after it is shown, then "
                              "send it again.")
        return True


def _slot(slot_id: int) -> TimeSlot:
    with session():
        slot = TimeSlot.get_or_none(TimeSlot.id == slot_id)
    if slot is None:
        raise SlotNotFound(slot_id)
    return slot


async def decoy_answer(slot_id: int, email: str, base: str) -> tuple[TimeSlot, dict]:
    """What a filled honeypot gets: the slot as it is and a booking that does not exist,
    shaped like POST /book's answer. Nothing is written."""
    slot = await anyio.to_thread.run_sync(_slot, slot_id)
    reference = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    token = secrets.token_urlsafe(32)
    return slot, {
        "reference": reference,
        "status": "confirmed",
        "token": token,
        "manage_url": f"{base}/manage/{reference}#token={token}",
    }
