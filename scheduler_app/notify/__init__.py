"""Telling people, at least once: the outbox and what delivers it.

    outbox.py       the rows a booking change owes, written in its transaction
    relay.py        claims due rows with a lease, sends them, retries, gives up
    mail.py         the lead's confirmation and the rep's notice (smtplib)
    invitations.py  the iCalendar data: invitations, the download, the rep's feed
    webhooks.py     Standard Webhooks to SCHEDULER_WEBHOOK_URL
    routes.py       GET /calendar/{secret}.ics and GET /bookings/{reference}/invite.ics

``booking.transaction`` calls ``outbox.enqueue``; the app and the command line
start ``relay``; the channels are called by the relay only.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A message could not be delivered this time; the relay retries it later."""


class PermanentError(DeliveryError):
    """A message that no retry can deliver (an address the server refuses)."""


class EndpointGone(DeliveryError):
    """The webhook endpoint answered 410 Gone: it wants no more messages."""
