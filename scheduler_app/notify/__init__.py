"""Telling people, at least once: the outbox and what delivers it.

``outbox.enqueue`` runs inside the booking module's transaction and writes one
row per message and destination; the relay delivers them.
"""
