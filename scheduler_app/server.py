"""Run the app under uvicorn, one process or several workers sharing one socket."""

from __future__ import annotations

import os
import signal
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

from .logs import log_config

APP = "scheduler_app.main:app"

# More workers than this gain nothing on the small VMs the service is meant for
# and cost a PostgreSQL pool each: 4 workers x 16 connections stay well under
# PostgreSQL's default max_connections of 100.
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """One worker per usable core, at most ``MAX_DEFAULT_WORKERS``.

    The handlers are sync and run in each worker's thread pool, so I/O waits
    overlap within a worker; what more processes add is CPU for the Python
    work (validation, JSON), and that stops helping beyond one per core.
    """
    return max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS))


class _Config(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        """Like uvicorn's, but the socket is created with IPPROTO_TCP.

        uvicorn creates the shared socket with protocol 0; the workers rebuild it
        with that protocol, and asyncio only sets TCP_NODELAY on sockets whose
        protocol is IPPROTO_TCP, so every keep-alive response would wait on
        Nagle's algorithm (uvicorn issue #3149).
        """
        if self.uds is not None or self.fd is not None:
            return super().bind_socket()
        family = socket.AF_INET6 if self.host and ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.set_inheritable(True)
        uvicorn.config.logger.info(
            "Uvicorn running on http://%s:%d (Press CTRL+C to quit)",
            self.host,
            sock.getsockname()[1],
        )
        return sock


def make_config(
    host: str,
    port: int,
    workers: int,
    *,
    log_format: str = "text",
    access_log: bool = True,
    proxy_headers: bool = False,
    forwarded_allow_ips: str = "127.0.0.1,::1",
    graceful_timeout: int | None = 10,
    **options,
) -> uvicorn.Config:
    """The uvicorn configuration; building it configures logging in this process.

    ``proxy_headers`` trusts X-Forwarded-For/-Proto only from ``forwarded_allow_ips``
    (the proxy's addresses). ``graceful_timeout`` bounds how long a stop waits for
    requests in flight before cancelling them (None: no bound).
    """
    return _Config(
        APP,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(log_format),
        access_log=access_log,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        timeout_graceful_shutdown=graceful_timeout,
        **options,
    )


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


def serve(config: uvicorn.Config) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully and exit 0.

    uvicorn re-raises the stop signal once it has shut down, with the handlers
    it found restored; ours turns that into a normal exit.
    """
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()
