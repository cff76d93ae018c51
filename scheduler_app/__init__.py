"""A small HTTP API for booking meetings from a sales rep's calendar."""

__version__ = "0.1.0"
