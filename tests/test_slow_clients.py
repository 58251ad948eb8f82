"""Slow or hostile connections cannot stop the Procfile's web server from answering Twilio.

The Procfile's `web:` command runs on a loopback port (gunicorn.conf.py, two processes of four
threads, as deployed). 100 connections stay open meanwhile, most sending a POST's headers and then
one byte of the body every 2 s, the rest their headers a byte at a time: with gunicorn's threaded
workers 8 of them left no thread for Twilio (reviews/security.md, M3). The webhooks must still be
answered with the greeting's TwiML. How fast is for bench/slowclients.py, not for a test.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest

from ivr import PROJECT_ROOT
from ivr.devtools.emulator import sign

from .conftest import FIRM, TOKEN

pytestmark = pytest.mark.slow  # the deadlines under test are 10 s each

SLOW = 100
BODY_TRICKLERS = 70  # the rest trickle their headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile_web(port: int) -> list[str]:
    """The Procfile's web command, as written, on a loopback port."""
    line = next(
        line
        for line in (PROJECT_ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    args = shlex.split(line.removeprefix("web:"))
    assert args[0] == "gunicorn", line
    return [sys.executable, "-m", *args, "--bind", f"127.0.0.1:{port}"]


def start(tmp: Path, port: int, **settings: str) -> tuple[subprocess.Popen, Path]:
    """The Procfile's web server with `settings`, once both its processes serve; and its log."""
    env = {k: v for k, v in os.environ.items() if k != "FLASK_DEBUG"}
    env.update(
        {
            "SECRET_KEY": "s" * 32,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "FIRM_PHONE_NUMBER": FIRM,
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "OFFICE_HOURS": "always",
            "FORWARDED_PROXIES": "1",  # as behind Heroku's router
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": "4",
            **settings,
        }
    )
    subprocess.run(
        [str(Path(sys.executable).with_name("ivr")), "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    log = tmp / "web.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            procfile_web(port), cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while log.read_text().count("Started server process") < 2:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return process, log


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The Procfile's web server with WORKER_IN_WEB=1 (one dyno); yields (port, its log file)."""
    port = free_port()
    process, log = start(tmp_path_factory.mktemp("web"), port, WORKER_IN_WEB="1")
    try:
        yield port, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def voice_request(port: int, sid: str) -> bytes:
    """A signed first webhook of a call, as Heroku's router forwards it."""
    params = {"CallSid": sid, "From": "+13125550123", "To": FIRM, "CallStatus": "ringing"}
    body = urlencode(params).encode()
    signature = sign(TOKEN, f"https://127.0.0.1:{port}/voice", params)
    return head(port, {"X-Twilio-Signature": signature, "Content-Length": str(len(body))}) + body


def head(port: int, headers: dict[str, str]) -> bytes:
    lines = [
        "POST /voice HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "X-Forwarded-Proto: https",
        "X-Forwarded-For: 192.0.2.1",
        "Content-Type: application/x-www-form-urlencoded",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(port: int, request: bytes) -> tuple[int, bytes]:
    """Send `request` on a new connection; the status and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


class Tricklers:
    """SLOW connections, each sending one more byte every 2 s until stopped."""

    def __init__(self, port: int):
        self.port = port
        self.stop = threading.Event()
        self.socks: list[tuple[socket.socket, bytes]] = []
        for n in range(SLOW):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            request = head(port, {"Content-Length": "1000"})
            if n < BODY_TRICKLERS:
                sock.sendall(request)  # the headers whole, then the body a byte at a time
                request = b"a" * 1000
            self.socks.append((sock, request))
        self.thread = threading.Thread(target=self.trickle)
        self.thread.start()

    def trickle(self) -> None:
        sent = 0
        while not self.stop.wait(2):
            for sock, rest in self.socks:
                try:
                    sock.send(rest[sent : sent + 1])
                except OSError:  # closed by the server
                    pass
            sent += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock, _ in self.socks:
            sock.close()


def test_webhooks_are_answered_while_100_slow_connections_are_open(server):
    port, log = server
    tricklers = Tricklers(port)
    try:
        time.sleep(3)  # every slow connection has been accepted and has sent a byte more
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda n: answer(port, voice_request(port, f"CA{n:032x}")), range(16))
            )
        for status, body in answers:
            assert status == 200, body[:300]
            twiml = ET.fromstring(body)  # the greeting: a language menu, said or played
            assert twiml.tag == "Response"
            gather = twiml.find("Gather")
            assert gather is not None and gather.get("numDigits") == "1", body[:300]
            assert list(gather), body[:300]
        # The slow ones are still open (no thread was held: nothing had to give way) ...
        assert all(sock.fileno() != -1 for sock, _ in tricklers.socks)
    finally:
        tricklers.close()
    # ... and each web process ran the background jobs too (gunicorn.conf.py, post_worker_init).
    assert log.read_text().count("background work started") == 2, log.read_text()


def test_a_body_or_headers_too_slow_are_refused(server):
    """Past the deadlines (10 s, ivr/edge/server.py) the server lets go of a slow client."""
    port, _ = server
    slow_body = socket.create_connection(("127.0.0.1", port), timeout=60)
    slow_body.sendall(head(port, {"Content-Length": "1000"}) + b"a")
    slow_headers = socket.create_connection(("127.0.0.1", port), timeout=60)
    slow_headers.sendall(b"POST /voice HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        assert slow_body.recv(4096).startswith(b"HTTP/1.1 408 ")
        assert slow_headers.recv(4096) == b""  # closed without an answer
    finally:
        slow_body.close()
        slow_headers.close()
    assert answer(port, voice_request(port, "CA" + "f" * 32))[0] == 200


def test_sigterm_finishes_the_requests_in_progress_and_takes_no_new_ones(tmp_path):
    """A restart or deploy (SIGTERM, then SIGKILL 30 s later on Heroku) cuts no webhook short."""
    port = free_port()
    process, log = start(tmp_path, port)
    try:
        request = voice_request(port, "CA" + "e" * 32)
        in_progress = socket.create_connection(("127.0.0.1", port), timeout=30)
        in_progress.sendall(request[:-5])  # its body not all there yet
        idle = socket.create_connection(("127.0.0.1", port), timeout=30)
        time.sleep(0.5)
        process.terminate()
        deadline = time.monotonic() + 20
        while "Waiting for connections to close" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        with pytest.raises(ConnectionRefusedError):  # no new connection
            socket.create_connection(("127.0.0.1", port), timeout=5)
        in_progress.sendall(request[-5:])
        data = in_progress.recv(65536)
        assert data.startswith(b"HTTP/1.1 200 "), data[:300]
        assert idle.recv(100) == b""  # an idle connection is closed
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        in_progress.close()
        idle.close()


def test_every_answer_says_connection_close(server):
    """Keep-alive is off (gunicorn.conf.py): the router is told, and the server closes at once."""
    port, _ = server
    request = voice_request(port, "CA" + "d" * 32).replace(b"Connection: close\r\n", b"")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):  # ends only when the server closes
            data += chunk
    head = data.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200 ") and b"\r\nconnection: close" in head, head
