"""Optional challenges, each off by default: ALTCHA proof of work (no third
party), Cloudflare Turnstile, and the refusal of disposable email domains.

A solved ALTCHA challenge is accepted once: its signature is spent in the
rate-limit storage (Redis when configured, so every worker and server sees it;
else this process) for as long as the challenge is valid.

Each library (``altcha``, ``httpx``, the disposable list) is imported when its
option is first used, not by every worker that has them all off.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import logging

from ..errors import ClientError
from .counting import Counters

log = logging.getLogger("scheduler_app.protect")

ALTCHA_SECONDS = 600  # a challenge is valid this long after it is issued
TURNSTILE_TIMEOUT = 5.0


class ChallengeFailed(ClientError):
    status = 403


class DisposableEmail(ClientError):
    status = 422

    def __init__(self, domain: str):
        super().__init__(f"Addresses at {domain} are disposable; please use an address "
                         "you will read, so that we can reach you about the meeting.")


class Altcha:
    """Issue ALTCHA challenges (v1: SHA-256, the number below ``max_number``) and
    accept each solution once."""

    def __init__(self, secret: str, max_number: int, counters: Counters):
        self.key = secret.encode()
        self.max_number = max_number
        self.counters = counters

    def challenge(self) -> dict:
        import altcha

        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=ALTCHA_SECONDS)
        made = altcha.create_challenge_v1(algorithm="SHA-256", max_number=self.max_number,
                                          hmac_key=self.key, expires=expires)
        return made.to_dict()

    async def verify(self, payload: str | None) -> None:
        """Raise ``ChallengeFailed`` unless ``payload`` solves a challenge of ours
        that has not been used before."""
        if not payload:
            raise ChallengeFailed("The anti-bot check is missing; let the page finish it, "
                                  "then send the form again.")
        import altcha

        verified, _ = altcha.verify_solution_v1(payload, self.key, check_expires=True)
        if not verified:
            raise ChallengeFailed("The anti-bot check failed or expired; reload the page "
                                  "and send the form again.")
        try:
            signature = json.loads(base64.b64decode(payload))["signature"]
        except (ValueError, KeyError, TypeError, binascii.Error):  # verified, so unlikely
            raise ChallengeFailed("The anti-bot check is not valid.") from None
        if not await self.counters.use_once(f"altcha:{signature}", ALTCHA_SECONDS):
            raise ChallengeFailed("This anti-bot check was already used; reload the page "
                                  "and send the form again.")


class Turnstile:
    """Check a Cloudflare Turnstile token with its siteverify service. The service
    unreachable or failing lets the request through, with a warning."""

    def __init__(self, secret: str, verify_url: str):
        self.secret = secret
        self.verify_url = verify_url

    async def verify(self, token: str | None, remote_ip: str | None) -> None:
        import httpx

        if not token:
            raise ChallengeFailed("The anti-bot check is missing; let the page finish it, "
                                  "then send the form again.")
        form = {"secret": self.secret, "response": token[:2048]}
        if remote_ip:
            form["remoteip"] = remote_ip
        try:
            async with httpx.AsyncClient(timeout=TURNSTILE_TIMEOUT) as client:
                answer = await client.post(self.verify_url, data=form)
            answer.raise_for_status()
            outcome = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("Turnstile verification unavailable (%s: %s): request let through",
                        type(exc).__name__, exc)
            return
        if not outcome.get("success"):
            codes = outcome.get("error-codes") or []
            log.info("Turnstile refused a token: %s", ", ".join(map(str, codes)) or "no code")
            spent = "timeout-or-duplicate" in codes
            raise ChallengeFailed(
                "This anti-bot check was already used or has expired; complete it again."
                if spent else "The anti-bot check failed; complete it again.")


def disposable_domain(email: str) -> str | None:
    """The disposable domain of ``email`` (itself or a parent domain on the list), or None."""
    from disposable_email_domains import blocklist

    domain = email.rpartition("@")[2].lower().rstrip(".")
    parts = domain.split(".")
    for i in range(len(parts) - 1):
        candidate = ".".join(parts[i:])
        if candidate in blocklist:
            return candidate
    return None
