"""The rep's side over HTTP: the ``/admin`` API and page, behind SCHEDULER_ADMIN_TOKEN.

Access is decided by ``AdminGate``, before anything else reads the request
(its body included), for every path under ``/admin``:

- no SCHEDULER_ADMIN_TOKEN: 404, as for any unknown path (and the routes are
  left out of ``/openapi.json``, so nothing shows there is an admin);
- else the page (``/admin`` and its two files) is served to anyone, since it
  holds no data, and every API call needs ``Authorization: Bearer <token>``
  (compared as SHA-256 digests in constant time); without it, or with another
  token, 401 with ``WWW-Authenticate: Bearer`` and nothing more.

Every ``/admin`` answer has ``Cache-Control: no-store``, and none is open to
other origins: ``cors.Cors`` passes ``/admin`` by and refuses its preflights.
The handlers are thin: the rules are ``rep_calendar``'s and ``booking``'s,
run by ``booking.transaction``; each change is logged with its request id.

    gate.py     the token check (``AdminGate``, asked first by ``middleware.Front``)
    shapes.py   the API's request and response bodies
    api.py      the API's handlers (``router``)
    page.py     the page and its two files (``pages``)
"""

from __future__ import annotations

from .api import router
from .gate import PAGE_FILES, AdminGate, authorized
from .page import pages

__all__ = ["PAGE_FILES", "AdminGate", "authorized", "pages", "router"]
