"""``scheduler-app serve`` for production: workers, TCP_NODELAY, proxies, access log, stopping."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import pickle
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.reduction import ForkingPickler

import pytest
from support import SCRIPT, Server, exchange, free_port, unavailable

from scheduler_app.server import MAX_DEFAULT_WORKERS, default_workers, make_config


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_worker_rebuilding_the_shared_socket_sets_tcp_nodelay_on_accepted_connections():
    """What a uvicorn worker does with the socket the supervisor bound (uvicorn #3149).

    The socket travels to the worker pickled by multiprocessing, which rebuilds it
    with the family, type and protocol it had; asyncio then sets TCP_NODELAY on
    each accepted connection only if that protocol is IPPROTO_TCP.
    """
    listener = make_config("127.0.0.1", 0, 2).bind_socket()
    in_worker = pickle.loads(ForkingPickler.dumps(listener))  # as multiprocessing does
    listener.close()

    async def accept_one() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport: asyncio.Transport) -> None:
                accepted.set_result(_nodelay(transport.get_extra_info("socket")))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Protocol, sock=in_worker)
        _, writer = await asyncio.open_connection(*in_worker.getsockname())
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    # On a thread of its own: the browser tests' Playwright keeps an event loop
    # running on the main thread for the rest of the session.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, accept_one()).result() != 0


def _pidfd_getfd(pid: int, fd: int) -> socket.socket:
    """A duplicate of another process's descriptor (Linux 5.6+ pidfd_getfd)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        copy = libc.syscall(438, pidfd, fd, 0)  # 438: pidfd_getfd on every architecture
        if copy < 0:
            code = ctypes.get_errno()
            unavailable(f"pidfd_getfd is not permitted here: {errno.errorcode.get(code, code)}")
        return socket.socket(fileno=copy)
    finally:
        os.close(pidfd)


def _socket_inode(local_port: int, remote_port: int) -> str:
    """The inode of the TCP socket 127.0.0.1:local_port <-> :remote_port, from /proc/net/tcp."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
                return inode
    raise AssertionError(f"no socket {local_port} <-> {remote_port} in /proc/net/tcp")


def _find_descriptor(process_group: int, inode: str) -> tuple[int, int]:
    """(pid, fd) of the process in ``process_group`` that holds socket ``inode``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != process_group:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid), int(fd)
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    raise AssertionError(f"no process of group {process_group} holds socket {inode}")


def test_with_two_workers_the_served_connection_has_tcp_nodelay(tmp_path):
    server = Server(f"sqlite:///{tmp_path / 'x.db'}", workers=2).start()
    try:
        server.wait_ready()
        client = socket.create_connection(("127.0.0.1", server.port))
        with client:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(1024).startswith(b"HTTP/1.1 200")  # a worker accepted it
            inode = _socket_inode(server.port, client.getsockname()[1])
            pid, fd = _find_descriptor(server.process.pid, inode)
            assert pid != server.process.pid  # served by a worker, not the supervisor
            with _pidfd_getfd(pid, fd) as served:
                assert _nodelay(served) != 0
    finally:
        server.stop()


def test_default_workers_follow_the_cores_within_bounds():
    assert 1 <= default_workers() <= MAX_DEFAULT_WORKERS
    assert default_workers() == min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS)


def test_the_command_line_does_not_import_the_web_framework():
    """With several workers the ``serve`` process only prepares the database and
    supervises; each worker imports the app. Importing FastAPI there too cost
    ~0.2 s of startup and ~17 MB in the supervisor."""
    code = ("import sys, scheduler_app.cli; "
            "print(sorted({'fastapi', 'starlette', 'pydantic'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_host_port_and_workers_come_from_the_environment(tmp_path):
    server = Server(f"sqlite:///{tmp_path / 'x.db'}", env={"SCHEDULER_WORKERS": "2"})
    server.env.update(SCHEDULER_HOST="127.0.0.1", SCHEDULER_PORT=str(server.port))
    server.args = [SCRIPT, "serve"]
    try:
        server.start().wait_ready()
    finally:
        server.stop()
    assert "Started parent process" in server.output  # the multi-worker supervisor
    assert server.output.count("Started server process") == 2


def test_flags_override_the_environment(tmp_path):
    elsewhere = free_port()
    server = Server(f"sqlite:///{tmp_path / 'x.db'}", workers=1,
                    env={"SCHEDULER_PORT": str(elsewhere), "SCHEDULER_WORKERS": "3"})
    try:
        server.start().wait_ready()  # on --port, not on SCHEDULER_PORT
    finally:
        server.stop()
    assert f":{server.port}" in server.output and f":{elsewhere}" not in server.output
    assert "Started parent process" not in server.output  # --workers 1 won over 3


def _access_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "uvicorn.access" in line]


@pytest.mark.parametrize(("flags", "client"), [
    (["--no-proxy-headers"], "127.0.0.1"),
    ([], "203.0.113.7"),  # on by default (the rate limits count visitors behind nginx)
    (["--proxy-headers"], "203.0.113.7"),
    (["--proxy-headers", "--forwarded-allow-ips", "192.0.2.1"], "127.0.0.1"),
])
def test_forwarded_headers_are_trusted_only_with_proxy_headers_from_allowed_ips(
    tmp_path, flags, client
):
    server = Server(f"sqlite:///{tmp_path / 'x.db'}")
    server.args += flags
    try:
        server.start().wait_ready()
        headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        assert exchange(server.port, "GET", "/ready", headers=headers)[0] == 200
    finally:
        server.stop()
    [line] = [line for line in _access_lines(server.output) if "/ready" in line]
    assert f" {client}:" in line


def test_no_access_log_leaves_the_other_lines(tmp_path):
    server = Server(f"sqlite:///{tmp_path / 'x.db'}")
    server.args.append("--no-access-log")
    try:
        server.start().wait_ready()
        assert exchange(server.port, "GET", "/ready")[0] == 200
    finally:
        server.stop()
    assert _access_lines(server.output) == []
    assert "Application startup complete" in server.output


def test_sigterm_cancels_a_request_still_running_after_the_graceful_timeout(tmp_path):
    """A booking whose body never finishes arriving keeps the request open; the stop
    waits --graceful-timeout for it, then cancels it and exits."""
    server = Server(f"sqlite:///{tmp_path / 'x.db'}")
    server.args += ["--graceful-timeout", "1"]
    server.start().wait_ready()
    stuck = socket.create_connection(("127.0.0.1", server.port))
    with stuck:
        stuck.sendall(b"POST /book HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{\"slot_id\": 1,")
        exchange(server.port, "GET", "/health")  # the stuck request has been read by now
        server.signal(signal.SIGTERM)
        try:
            output = server.finish(timeout=60)
        except Exception:
            server.kill_all()
            raise
    assert "Cancel 1 running task(s), timeout graceful shutdown exceeded" in output
    assert server.process.returncode == 0, output
