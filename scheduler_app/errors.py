"""The service's own exceptions (seeder lookup errors live in ``seeders.registry``).

    SchedulerError
    ├── ConfigError              a setting is missing or invalid (stops startup)
    ├── ClientError              the request cannot be done; ``status`` says how
    │   ├── Unauthorized         no Bearer token                         -> 401
    │   ├── NotFound                                                     -> 404
    │   │   ├── SlotNotFound     no slot has that id
    │   │   ├── BookingNotFound  no booking has that reference and token
    │   │   ├── HoldNotFound     no live hold has that id and token
    │   │   ├── ReferenceNotFound no booking has that reference (the rep's look-up)
    │   │   ├── ClosureNotFound  no closure has that id
    │   │   └── CalendarNotFound no calendar has that slug
    │   ├── Conflict                                                     -> 409
    │   │   ├── SlotUnavailable  the slot cannot be booked or held
    │   │   │   ├── SlotAlreadyBooked
    │   │   │   ├── SlotAlreadyStarted
    │   │   │   ├── SlotHeld
    │   │   │   ├── SlotTooSoon
    │   │   │   ├── DayFull
    │   │   │   └── SlotClosed   on a day the rep has closed
    │   │   ├── SlotNotRemovable booked or held: the rep cannot remove it
    │   │   ├── SlotsRefused     extra times that overlap, are past or closed
    │   │   ├── BookingUnchangeable  cancelled, or its meeting has started
    │   │   └── TooManyBookings  the lead's limit of upcoming bookings
    │   └── IdempotencyKeyReused the key was used for another request    -> 422
    ├── DatabaseUnavailable      the database did not answer             -> 503
    └── SchemaError              an existing table cannot be brought up to date
"""


class SchedulerError(Exception):
    """Base class of every error the service raises on purpose."""


class ConfigError(SchedulerError, ValueError):
    """A setting is missing or invalid; the message names the variable."""


class ClientError(SchedulerError):
    """A request the rules refuse; the HTTP layer answers ``status`` with the message."""

    status = 400
    headers: dict[str, str] | None = None


class Unauthorized(ClientError):
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}

    def __init__(self, message: str = "This needs an Authorization: Bearer token.") -> None:
        super().__init__(message)


class NotFound(ClientError, LookupError):
    status = 404


class Conflict(ClientError):
    status = 409


class SlotNotFound(NotFound):
    def __init__(self, slot_id: int):
        super().__init__(f"Slot {slot_id} does not exist.")
        self.slot_id = slot_id


class BookingNotFound(NotFound):
    def __init__(self) -> None:
        # The same words for an unknown reference and a wrong token.
        super().__init__("No booking has this reference and token.")


class HoldNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No live hold has this id and token.")


class CalendarNotFound(NotFound):
    def __init__(self, slug: str):
        super().__init__(f"No calendar is named {slug!r}.")
        self.slug = slug


class SlotUnavailable(Conflict):
    """The slot exists but cannot be booked."""


class SlotAlreadyBooked(SlotUnavailable):
    def __init__(self, slot_id: int):
        super().__init__(f"Slot {slot_id} is already booked.")
        self.slot_id = slot_id


class SlotAlreadyStarted(SlotUnavailable):
    def __init__(self, slot_id: int):
        super().__init__(f"Slot {slot_id} has already started and can no longer be booked.")
        self.slot_id = slot_id


class SlotHeld(SlotUnavailable):
    def __init__(self, slot_id: int):
        super().__init__(f"Slot {slot_id} is held by another visitor for a few minutes.")
        self.slot_id = slot_id


class SlotTooSoon(SlotUnavailable):
    def __init__(self, slot_id: int, minutes: int):
        super().__init__(
            f"Slot {slot_id} starts in less than {minutes} minutes and can no longer be booked."
        )
        self.slot_id = slot_id


class DayFull(SlotUnavailable):
    def __init__(self, slot_id: int):
        super().__init__(f"Slot {slot_id} is on a day that is fully booked.")
        self.slot_id = slot_id


class SlotClosed(SlotUnavailable):
    def __init__(self, slot_id: int):
        super().__init__(f"Slot {slot_id} is on a day the rep has closed.")
        self.slot_id = slot_id


class ReferenceNotFound(NotFound):
    def __init__(self, reference: str):
        super().__init__(f"No booking has the reference {reference}.")


class ClosureNotFound(NotFound):
    def __init__(self, closure_id: int):
        super().__init__(f"Closure {closure_id} does not exist.")


class SlotNotRemovable(Conflict):
    """The rep asked to remove a slot that is booked or held by a visitor."""


class SlotsRefused(Conflict):
    """Extra times that cannot be added; the message names each problem."""


class BookingUnchangeable(Conflict):
    """The booking is cancelled, or its meeting has started."""


class TooManyBookings(Conflict):
    def __init__(self, limit: int):
        what = "an upcoming meeting" if limit == 1 else f"{limit} upcoming meetings"
        super().__init__(
            f"This email already has {what}; reschedule it with its manage link instead."
        )


class IdempotencyKeyReused(ClientError):
    status = 422

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was used for another request; send a new key for a new request."
        )


class DatabaseUnavailable(SchedulerError):
    """The database could not be reached or is busy; the request may be retried."""


class SchemaError(SchedulerError):
    """An existing table lacks what the service needs and cannot be fixed safely."""
