"""The service's own exceptions (seeder lookup errors live in ``seeders.registry``).

    SchedulerError
    ├── ConfigError              a setting is missing or invalid (stops startup)
    ├── SlotNotFound             no slot has that id                 -> 404
    ├── SlotUnavailable          the slot cannot be booked           -> 409
    │   ├── SlotAlreadyBooked
    │   └── SlotAlreadyStarted
    ├── DatabaseUnavailable      the database did not answer         -> 503
    └── SchemaError              an existing table cannot be brought up to date
"""


class SchedulerError(Exception):
    """Base class of every error the service raises on purpose."""


class ConfigError(SchedulerError, ValueError):
    """A setting is missing or invalid; the message names the variable."""


class SlotNotFound(SchedulerError, LookupError):
    def __init__(self, slot_id: int):
        super().__init__(f"Slot {slot_id} does not exist.")
        self.slot_id = slot_id


class SlotUnavailable(SchedulerError):
    """The slot exists but cannot be booked."""


class SlotAlreadyBooked(SlotUnavailable):
    def __init__(self, slot_id: int):
        super().__init__(f"Slot {slot_id} is already booked.")
        self.slot_id = slot_id


class SlotAlreadyStarted(SlotUnavailable):
    def __init__(self, slot_id: int):
        super().__init__(f"Slot {slot_id} has already started and can no longer be booked.")
        self.slot_id = slot_id


class DatabaseUnavailable(SchedulerError):
    """The database could not be reached or is busy; the request may be retried."""


class SchemaError(SchedulerError):
    """An existing table lacks what the service needs and cannot be fixed safely."""
