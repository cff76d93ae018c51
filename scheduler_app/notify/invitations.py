"""The iCalendar data (RFC 5545, iTIP RFC 5546), built with the ``icalendar`` package.

One booking is one calendar event for its whole life: the same ``UID``
(``<reference>@scheduler-app``) in the lead's invitation, the rep's notice,
the download and the rep's feed, and ``SEQUENCE`` = the booking's sequence
(0, then +1 on every reschedule and cancel), so that a calendar replaces its
copy with each newer message. An invitation is ``METHOD:REQUEST``; a cancel
is ``METHOD:CANCEL`` with ``STATUS:CANCELLED`` (a REQUEST on cancel would
leave the event in calendars). Times are in UTC.
"""

from __future__ import annotations

from datetime import timedelta

from icalendar import Calendar, Event, vCalAddress, vDuration

from .outbox import parse_utc

PRODID = "-//scheduler-app//Meeting scheduler//EN"
UID_DOMAIN = "scheduler-app"
MEDIA_TYPE = "text/calendar"

# How often a subscribed calendar should fetch the rep's feed again.
FEED_REFRESH = timedelta(minutes=15)


def uid(reference: str) -> str:
    """The booking's event UID: stable for the life of the booking."""
    return f"{reference}@{UID_DOMAIN}"


def method_of(snap: dict) -> str:
    """REQUEST for a confirmed booking, CANCEL for a cancelled one."""
    return "CANCEL" if snap["status"] == "cancelled" else "REQUEST"


def _calendar(method: str | None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    return cal


def _address(email: str, name: str | None = None, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["cn"] = name
    for key, value in params.items():
        address.params[key.replace("_", "-")] = value
    return address


def lead_label(snap: dict) -> str:
    return f"{snap['name']} <{snap['email']}>" if snap.get("name") else snap["email"]


def source_lines(source: dict | None) -> list[str]:
    """The lead's source, one ``key: value`` per line, in a fixed order."""
    if not source:
        return []
    keys = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "referrer")
    return [f"{key}: {source[key]}" for key in keys if source.get(key)]


def description(snap: dict, for_rep: bool) -> str:
    """The event's text: the reference and the manage page; for the rep, the lead too."""
    lines = [f"Reference: {snap['reference']}"]
    if snap.get("manage_url"):
        lines.append(f"Reschedule or cancel: {snap['manage_url']}")
    if for_rep:
        lines.append(f"Lead: {lead_label(snap)}")
        if snap.get("timezone"):
            lines.append(f"Lead's time zone: {snap['timezone']}")
        if snap.get("notes"):
            lines.append(f"Notes: {snap['notes']}")
        lines += [f"Source {line}" for line in source_lines(snap.get("source"))]
    if snap["status"] == "cancelled" and snap.get("cancel_reason"):
        lines.append(f"Cancelled: {snap['cancel_reason']}")
    return "\n".join(lines)


def event(snap: dict, *, for_rep: bool, attendee: bool = True) -> Event:
    """The booking's VEVENT as ``snap`` (``outbox.snapshot``) describes it."""
    vevent = Event()
    vevent.add("uid", uid(snap["reference"]))
    vevent.add("sequence", snap["sequence"])
    vevent.add("dtstamp", parse_utc(snap["at"]))
    vevent.add("dtstart", parse_utc(snap["slot"]["start"]))
    vevent.add("dtend", parse_utc(snap["slot"]["end"]))
    title = snap["title"]
    vevent.add("summary", f"{title}: {snap.get('name') or snap['email']}" if for_rep else title)
    vevent.add("description", description(snap, for_rep))
    if snap.get("organizer"):
        vevent.add("organizer", _address(snap["organizer"]))
    if attendee and snap.get("email"):
        vevent.add("attendee", _address(snap["email"], snap.get("name"), role="REQ-PARTICIPANT",
                                        partstat="NEEDS-ACTION", rsvp="TRUE"))
    vevent.add("status", "CANCELLED" if snap["status"] == "cancelled" else "CONFIRMED")
    vevent.add("transp", "OPAQUE")
    return vevent


def invitation(snap: dict, *, for_rep: bool) -> tuple[str, bytes]:
    """The iTIP message for the booking's current state: (METHOD, iCalendar bytes)."""
    method = method_of(snap)
    cal = _calendar(method)
    cal.add_component(event(snap, for_rep=for_rep))
    return method, cal.to_ical()


def download(snap: dict) -> bytes:
    """The lead's "Add to calendar" file: ``METHOD:PUBLISH`` (no reply expected, so
    no ATTENDEE, as RFC 5546 asks), with the same UID and SEQUENCE as the invitations."""
    cal = _calendar("PUBLISH")
    cal.add_component(event(snap, for_rep=False, attendee=False))
    return cal.to_ical()


def feed(snaps: list[dict], name: str) -> bytes:
    """The rep's subscribed calendar: every event in ``snaps``, no METHOD (a
    published calendar, not a message), refreshed every 15 minutes."""
    cal = _calendar(None)
    cal.add("x-wr-calname", name)
    cal.add("name", name)
    cal.add("refresh-interval", FEED_REFRESH, parameters={"value": "DURATION"})
    cal.add("x-published-ttl", vDuration(FEED_REFRESH))
    for snap in snaps:
        cal.add_component(event(snap, for_rep=True))
    return cal.to_ical()
