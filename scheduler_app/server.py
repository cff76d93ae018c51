"""Run the app under uvicorn, one process or several workers sharing one socket."""

from __future__ import annotations

import signal
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

APP = "scheduler_app.main:app"


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


def make_config(host: str, port: int, workers: int, **options) -> uvicorn.Config:
    return _Config(APP, host=host, port=port, workers=workers, **options)


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
