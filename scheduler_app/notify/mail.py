"""Email: the lead's confirmation and the rep's notice, with the invitation.

Standard library only (``email`` to compose, ``smtplib`` to send). TLS is
always verified with ``ssl.create_default_context()`` (certificate and host
name; ``smtplib`` checks neither by default): ``smtps://`` speaks TLS from the
start, ``smtp://`` upgrades with STARTTLS and fails if the server does not
offer it, and only ``?starttls=0`` (a relay on this host) sends in clear.

Each message is ``multipart/alternative``: text, HTML, and the invitation as
``text/calendar; method=<its METHOD>``, which mail clients show as an
invitation with its buttons. The ``Message-ID`` is built from the outbox row,
so a message sent again after a crash has the same one and can be deduplicated.
"""

from __future__ import annotations

import html
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from ..settings import Settings
from . import PermanentError, invitations
from .invitations import lead_label, source_lines
from .outbox import parse_utc

# Seconds a connection, or each command on it, may take before the attempt fails.
TIMEOUT = 30

# Per event: the subject's word, and how the sentence goes ({what} {moment}).
_WHAT = {
    "booking.created": ("Booked", "{what} is booked for {moment}."),
    "booking.rescheduled": ("Moved", "{what} has moved to {moment}."),
    "booking.cancelled": ("Cancelled", "{what} on {moment} is cancelled."),
}


def when(snap: dict, zone: str, short: bool = False) -> str:
    """``Monday 23 November 2026, 09:00-09:30 EST (America/New_York)``; short:
    ``Mon 23 Nov 2026 09:00 EST``."""
    tz = ZoneInfo(zone)
    start = parse_utc(snap["slot"]["start"]).astimezone(tz)
    end = parse_utc(snap["slot"]["end"]).astimezone(tz)
    if short:
        return f"{start:%a} {start.day} {start:%b %Y %H:%M %Z}"
    return (f"{start:%A} {start.day} {start:%B %Y}, {start:%H:%M}\u2013{end:%H:%M} "
            f"{start:%Z} ({zone})")


def _one_line(text: str, limit: int = 120) -> str:
    """``text`` fit for a header: no control characters, not too long."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower() or "scheduler-app"


def message_id(outbox_id: int, snap: dict, recipient: str, mail_from: str) -> str:
    """The same for every attempt at one outbox message."""
    return f"<outbox-{outbox_id}.{snap['reference'].lower()}.{recipient}@{_domain(mail_from)}>"


def _html(paragraphs: list[str], rows: list[tuple[str, str]], link: str | None) -> str:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    if rows:
        body += "<table>" + "".join(
            f"<tr><th align=\"left\">{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows) + "</table>"
    if link:
        url = html.escape(link, quote=True)
        body += f'<p><a href="{url}">Your booking\'s page</a></p>'
    return f"<!DOCTYPE html><html><body>{body}</body></html>"


def compose(outbox_id: int, recipient: str, snap: dict, settings: Settings) -> EmailMessage:
    """The email of outbox row ``outbox_id`` for ``recipient`` (lead | rep)."""
    verb, sentence = _WHAT[snap["event"]]
    title = snap["title"]
    link = snap.get("manage_url") if snap["status"] != "cancelled" else None
    if recipient == "lead":
        zone = snap.get("timezone") or snap["rep_timezone"]
        subject = f"{verb}: {title}, {when(snap, zone, short=True)}"
        greeting = f"Hello {snap['name']}," if snap.get("name") else "Hello,"
        paragraphs = [greeting, sentence.format(what=f"Your {title}", moment=when(snap, zone)),
                      f"Your booking reference is {snap['reference']}."]
        if snap["status"] == "cancelled":
            paragraphs.append("The invitation in this email removes it from your calendar.")
        else:
            paragraphs.append("The invitation in this email adds it to your calendar.")
            if link:
                paragraphs.append(
                    "To reschedule or cancel, use the \"Manage or cancel\" link the booking "
                    "page showed you: it holds your secret token, which this email does not "
                    f"carry. Your booking's page: {link}")
        rows: list[tuple[str, str]] = []
        reply_to = settings.rep_email
    else:
        zone = snap["rep_timezone"]
        subject = f"{verb}: {_one_line(lead_label(snap), 80)}, {when(snap, zone, short=True)}"
        paragraphs = [sentence.format(what=f"{title} with {lead_label(snap)}",
                                      moment=when(snap, zone))]
        rows = [("Email", snap["email"]), ("Name", snap.get("name") or ""),
                ("Lead's time zone", snap.get("timezone") or ""),
                ("Notes", snap.get("notes") or ""), ("Reference", snap["reference"])]
        rows += [(f"Source {k}", v) for k, _, v in
                 (line.partition(": ") for line in source_lines(snap.get("source")))]
        if snap.get("cancel_reason"):
            rows.append(("Reason", snap["cancel_reason"]))
        rows = [(k, v) for k, v in rows if v]
        reply_to = snap["email"]

    text = "\n\n".join(paragraphs)
    if rows:
        text += "\n\n" + "\n".join(f"{k}: {v}" for k, v in rows)
    if link and recipient == "rep":
        text += f"\n\nBooking page: {link}"

    msg = EmailMessage()
    msg["Subject"] = _one_line(subject, 200)
    msg["From"] = settings.mail_from
    msg["To"] = snap["to"]
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = format_datetime(parse_utc(snap["at"]))  # the change's time, on every attempt
    msg["Message-ID"] = message_id(outbox_id, snap, recipient, settings.mail_from)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg.set_content(text + "\n")
    msg.add_alternative(_html(paragraphs, rows, link), subtype="html")
    method, ics = invitations.invitation(snap, for_rep=recipient == "rep")
    msg.add_alternative(ics.decode(), subtype="calendar", params={"method": method})
    return msg


class SmtpUrl:
    """SCHEDULER_SMTP_URL taken apart (validated by settings)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.implicit_tls = parts.scheme == "smtps"
        self.starttls = not self.implicit_tls and query.get("starttls") != ["0"]
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 587 if self.starttls else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password or "") if parts.username else None


def send(msg: EmailMessage, settings: Settings) -> None:
    """Hand ``msg`` to the SMTP server; raise ``PermanentError`` when every recipient
    is refused for good (5xx), any other exception for a failure worth retrying."""
    url = SmtpUrl(settings.smtp_url)
    context = ssl.create_default_context()
    if url.implicit_tls:
        client = smtplib.SMTP_SSL(url.host, url.port, timeout=TIMEOUT, context=context)
    else:
        client = smtplib.SMTP(url.host, url.port, timeout=TIMEOUT)
    try:
        client.ehlo()
        if url.starttls:
            client.starttls(context=context)  # raises if the server does not offer it
            client.ehlo()
        if url.user is not None:
            client.login(url.user, url.password)
        try:
            client.send_message(msg, from_addr=settings.mail_from, to_addrs=[msg["To"]])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise PermanentError(f"recipient refused: {_reply(exc.recipients)}") from exc
            raise
        try:
            client.quit()
        except smtplib.SMTPException:
            pass  # delivered; a failed goodbye changes nothing
    finally:
        client.close()


def _reply(recipients: dict) -> str:
    return "; ".join(f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
                     for code, text in recipients.values())
