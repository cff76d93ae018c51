"""Real receivers for the notification tests: an SMTP server and a webhook endpoint.

``Mailbox`` is aiosmtpd's ``Controller`` (its own thread and event loop) on a
free port, with STARTTLS (or TLS from the start) on a throwaway certificate
made by ``openssl``, and AUTH. ``WebhookReceiver`` is ``http.server`` in a
thread; it checks each Standard Webhooks signature itself, by the spec's
algorithm, without the library that signed it.

Imported by name (``import receivers``), like ``support``.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import json
import shutil
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from support import free_port, unavailable, wait_until

SMTP_USER, SMTP_PASSWORD = "relay", "s3cret/with:odd@chars"


def make_certificate(folder: Path, names: str = "DNS:localhost,IP:127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate and its key for ``names`` (subjectAltName), by openssl."""
    openssl = shutil.which("openssl") or unavailable("openssl is missing (Debian package openssl)")
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", f"subjectAltName={names}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    user: str | None


class _Handler:
    def __init__(self, box: Mailbox):
        self.box = box

    async def handle_DATA(self, server, session, envelope):
        box = self.box
        if box.hold_next.is_set():
            # Play a slow server: take the message in, answer only when released
            # (or after a minute, so that a test that never releases cannot hang it).
            box.hold_next.clear()
            box.holding.set()
            deadline = asyncio.get_running_loop().time() + 60
            while not box.release.is_set() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            return "451 Try again later"
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        user = session.auth_data.login.decode() if session.auth_data else None
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        with box.lock:
            box.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message,
                                         tls, user))
        return "250 OK"


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = (auth_data.login.decode(), auth_data.password.decode()) == (SMTP_USER, SMTP_PASSWORD)
    return AuthResult(success=ok, auth_data=auth_data if ok else None)


@dataclass
class Mailbox:
    """An SMTP server on 127.0.0.1: ``tls`` is starttls, implicit or none."""

    cert: Path
    key: Path
    tls: str = "starttls"
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self):
        self.lock = threading.Lock()
        self.hold_next, self.holding, self.release = (threading.Event() for _ in range(3))
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        """SCHEDULER_SMTP_URL for this server, by the host name its certificate names."""
        user = "relay:s3cret%2Fwith%3Aodd%40chars"
        if self.tls == "implicit":
            return f"smtps://{user}@localhost:{self.port}"
        if self.tls == "none":
            return f"smtp://localhost:{self.port}?starttls=0"
        return f"smtp://{user}@localhost:{self.port}"

    def start(self) -> Mailbox:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        options = {"hostname": "127.0.0.1", "port": self.port, "server_hostname": "localhost"}
        if self.tls == "starttls":
            options.update(tls_context=context, require_starttls=True,
                           authenticator=_authenticate, auth_required=True)
        elif self.tls == "implicit":
            # aiosmtpd counts only STARTTLS as TLS for AUTH; the socket is TLS here.
            options.update(ssl_context=context, authenticator=_authenticate,
                           auth_require_tls=False)
        self._controller = Controller(_Handler(self), **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self.release.set()
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return [r.message for r in self.received]

    def wait_for(self, count: int, seconds: float = 30) -> list[EmailMessage]:
        wait_until(lambda: len(self.messages()) >= count, seconds, f"{count} email(s)")
        return self.messages()


def webhook_secret() -> str:
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_valid(secret: str, headers: dict[str, str], body: bytes,
                    tolerance: float = 300) -> bool:
    """The Standard Webhooks check, written from the spec: HMAC-SHA256 of
    ``{id}.{timestamp}.{body}`` under the base64-decoded secret, base64, as one of
    the space-separated ``v1,<signature>`` entries; the timestamp within tolerance."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance:
        return False
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    given = [entry.split(",", 1) for entry in headers.get("webhook-signature", "").split(" ")]
    return any(len(g) == 2 and g[0] == "v1" and hmac.compare_digest(g[1], expected)
               for g in given)


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    valid: bool
    answered: int

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class WebhookReceiver:
    """An HTTP endpoint that verifies signatures and answers ``fail_first`` calls
    with ``fail_status``, then ``status``."""

    def __init__(self, secret: str, fail_first: int = 0, fail_status: int = 500,
                 status: int = 204):
        self.secret, self.fail_first, self.fail_status, self.status = (
            secret, fail_first, fail_status, status)
        self.calls: list[Delivery] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    answer = (receiver.fail_status if len(receiver.calls) < receiver.fail_first
                              else receiver.status)
                    receiver.calls.append(Delivery(
                        headers, body, signature_valid(receiver.secret, headers, body), answer))
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/scheduler"

    def start(self) -> WebhookReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[Delivery]:
        with self.lock:
            return [c for c in self.calls if 200 <= c.answered < 300]
