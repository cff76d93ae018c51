"""Who a request is counted as: its client address, or a lead's email, as a key.

The address is the one uvicorn resolved: with proxy headers on (the default),
uvicorn replaces the TCP peer by the rightmost X-Forwarded-For entry that is
not one of SCHEDULER_FORWARDED_ALLOW_IPS, and only when the peer itself is one
of them; a client that is not a trusted proxy cannot choose its own key.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

from .settings import IPNetwork

IPV6_GROUP = 64  # an IPv6 client usually owns a whole /64


def client_address(scope: Scope) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The request's client address, or None when it has none (a Unix socket, an
    in-process test client)."""
    client = scope.get("client")
    if not client:
        return None
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``203.0.113.5`` for IPv4; the /64 network (``2001:db8:1:2::/64``) for IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_GROUP), strict=False))
    return str(address)


def client_key(scope: Scope, exempt: Iterable[IPNetwork]) -> str | None:
    """The key the request is counted under, or None when it is exempt from limits:
    no address, or one of the ``exempt`` networks."""
    address = client_address(scope)
    if address is None or any(address in network for network in exempt):
        return None
    return address_key(address)


def email_key(email: str) -> str:
    """A hash of the normalised address: lower case, any ``+tag`` dropped, so
    ``Jane+1@Example.com`` and ``jane@example.com`` count together. Never the address."""
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0] or local
    return hashlib.sha256(f"{local}@{domain}".encode()).hexdigest()[:32]
