"""A body over MAX_CONTENT_LENGTH is refused before a worker reads it, chunked bodies included.

Against the Procfile's server (gunicorn with the project's gunicorn.conf.py, whose processes read
requests in uvicorn's event loop: ivr/edge/server.py refuses the body there, and ivr/edge/limits.py
again in the app) on 127.0.0.1, with raw sockets: the test client cannot show what a worker reads
from the network or how much memory that takes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from ivr import PROJECT_ROOT
from ivr.devtools.emulator import sign

from .conftest import FIRM, TOKEN

MIB = 1024 * 1024
BODY = 10 * MIB
# What a worker may grow by while refusing a 10 MiB body. Parsing one took 444 MiB.
MEMORY_BOUND = 32 * MIB


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its highest so far (VmHWM), in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One web process, configured as the Procfile runs it; yields (port, its pid)."""
    tmp = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = {
        # FLASK_DEBUG (scripts/run's .env, which the `ivr` CLI loads in other tests) stops gunicorn
        **{k: v for k, v in os.environ.items() if k != "FLASK_DEBUG"},
        "SECRET_KEY": "s" * 32,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "FIRM_PHONE_NUMBER": FIRM,
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "OFFICE_HOURS": "always",
        "FORWARDED_PROXIES": "1",
    }  # as behind Heroku's router
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
            "ivr:create_app()",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
                if children.split():
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        [worker] = children.split()
        # A first request, so the worker has imported and set up everything a request needs.
        assert post_form(port, "/voice", {"CallSid": "CA1"}) == 403
        yield port, int(worker)
    finally:
        process.terminate()
        process.communicate(timeout=30)


def post_form(
    port: int, path: str, params: dict[str, str], signed: bool = False, chunked: bool = False
) -> int:
    body = urlencode(params).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if chunked:  # in two chunks
        headers["Transfer-Encoding"] = "chunked"
        half = len(body) // 2
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:], b""))
    else:
        headers["Content-Length"] = str(len(body))
    if signed:
        headers["X-Twilio-Signature"] = sign(TOKEN, f"https://127.0.0.1:{port}{path}", params)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request_head(port, path, headers) + body)
        return status(sock)


def request_head(port: int, path: str, headers: dict[str, str]) -> bytes:
    """A POST's request line and headers, as Heroku's router forwards a request that came over
    https (outside debug, plain http would be redirected to https)."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "X-Forwarded-Proto: https",
        "X-Forwarded-For: 192.0.2.1",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status(sock: socket.socket) -> int:
    """The status code of the response on `sock` (read up to the end of its status line)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1."), data[:200]
    return int(data.split()[1])


def form_pieces(total: int, chunked: bool):
    """`total` bytes of a urlencoded form (many short fields, the costliest kind to parse), in
    64 KiB pieces, each framed as an HTTP chunk when `chunked`."""
    piece = b"a=x&b=y&" * (64 * 1024 // 8)
    for _ in range(total // len(piece)):
        yield b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


def send_big_body(port: int, path: str, chunked: bool) -> int:
    """POST a 10 MiB unsigned form to `path` while reading the answer; return its status.

    The body is sent from a thread, so the answer is read as soon as the server gives it, and a
    server that closes the connection without reading the rest just ends the sending.
    """
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(BODY)}
    headers = {"Content-Type": "application/x-www-form-urlencoded", **framing}
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(request_head(port, path, headers))

        def send() -> None:
            try:
                for piece in form_pieces(BODY, chunked):
                    sock.sendall(piece)
            except OSError:  # the server answered and closed: the rest is not wanted
                pass

        sender = threading.Thread(target=send)
        sender.start()
        try:
            return status(sock)
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # ends the sender's sendall at once
            except OSError:
                pass
            sender.join(timeout=120)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/voice", "/staff/login"])
def test_a_10_mib_post_is_refused_without_the_worker_reading_it(server, path, chunked):
    port, worker = server
    before = memory(worker)
    assert send_big_body(port, path, chunked) == 413
    after = memory(worker)
    # The highest the worker's memory has ever been, and where it is now: neither moved.
    assert after["VmHWM"] <= max(before["VmHWM"], before["VmRSS"] + MEMORY_BOUND), (before, after)
    assert after["VmRSS"] < before["VmRSS"] + MEMORY_BOUND, (before, after)
    # The worker is still there and answers Twilio.
    assert post_form(port, "/voice", {"CallSid": "CA2", "From": "+13125550123"}, signed=True) == 200
    assert memory(worker)["VmRSS"] > 0


def test_a_chunked_webhook_under_the_limit_is_read_whole(server):
    """The form arrives whole, or its signature would not match (403)."""
    port, _ = server
    params = {"CallSid": "CA3", "From": "+13125550123", "To": FIRM}
    assert post_form(port, "/voice", params, signed=True, chunked=True) == 200


def test_a_body_just_over_the_limit_is_refused_in_process(client):
    body = "x=" + "y" * (64 * 1024)
    for path in ("/voice", "/voice/es/menu", "/staff/login"):
        response = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 413, path
