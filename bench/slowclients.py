"""Slow clients against the web server: are Twilio's webhooks still answered, and how fast?

Not a test (tests/test_slow_clients.py asserts that webhooks are answered; the times are here).
Starts a web server on loopback (by default the Procfile's `web:` command, with gunicorn.conf.py),
then in one run:

1. baseline: `--webhooks` signed POSTs to /voice, `--parallel` at a time, no attack;
2. attack: `--slow` connections held open for the whole phase, each sending a POST's headers and
   then one byte of its body every `--interval` seconds (`--kind body`, security review M3), or its
   headers one byte at a time (`--kind headers`); a connection the server closes is opened again
   at once, so `--slow` are open at every moment. After `--settle` seconds the same webhooks are
   sent again.

A webhook counts as answered when a 200 with a TwiML <Response> arrives within Twilio's 15 s.
Prints answered/sent, p50/p99/max in ms for both phases and their ratio, how often the server
closed a slow connection, and the memory (VmRSS) of the web processes before and after.

    .venv/bin/python bench/slowclients.py                       # the Procfile's server
    .venv/bin/python bench/slowclients.py --server gthread      # gunicorn's threads (before)
    .venv/bin/python bench/slowclients.py --server waitress     # needs `pip install waitress`
    .venv/bin/python bench/slowclients.py --server a2wsgi       # uvicorn + a2wsgi, no ReadWhole
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-auth-token"
TWILIO_TIMEOUT = 15.0


def procfile_web() -> list[str]:
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    return shlex.split(line.removeprefix("web:"))


def server_command(kind: str, port: int, workers: int, threads: int) -> list[str]:
    """The command line of each server measured (all but `waitress` run under gunicorn with
    gunicorn.conf.py, whose settings the flags here override)."""
    bind = f"127.0.0.1:{port}"
    gunicorn = [sys.executable, "-m", *procfile_web()[:1]]
    app = procfile_web()[1:]
    common = ["--bind", bind, "--workers", str(workers), "--threads", str(threads)]
    if kind == "procfile":
        return [sys.executable, "-m", *procfile_web(), *common]
    if kind == "gthread":  # gunicorn.conf.py before issue 19
        return [
            *gunicorn,
            *app,
            *common,
            "--worker-class",
            "gthread",
            "--worker-connections",
            str(threads),
            "--keep-alive",
            "0",
        ]
    if kind == "a2wsgi":  # uvicorn and a2wsgi without ReadWhole: a thread reads the body
        return [*gunicorn, *app, *common, "--worker-class", "bench.slowclients.StreamingWorker"]
    if kind == "waitress":  # one process: waitress has no process manager of its own
        return [
            sys.executable,
            "-m",
            "waitress",
            f"--listen={bind}",
            f"--threads={threads}",
            "--connection-limit=2000",
            "--asyncore-use-poll",
            "--channel-timeout=10",
            # waitress drops X-Forwarded-* from clients it does not trust; here the router is
            # loopback, and the app's ProxyFix reads them as under gunicorn.
            "--trusted-proxy=127.0.0.1",
            "--trusted-proxy-headers=x-forwarded-for x-forwarded-proto",
            "--call",
            "ivr:create_app",
        ]
    raise SystemExit(f"unknown server {kind}")


try:  # the `a2wsgi` variant's worker class (gunicorn imports it from this module)
    from a2wsgi import WSGIMiddleware

    from ivr.edge.server import Worker

    class StreamingWorker(Worker):
        def load_wsgi(self) -> None:
            Worker.load_wsgi(self)
            self.wsgi = WSGIMiddleware(self.flask_app, workers=self.cfg.threads)

except ImportError:  # pragma: no cover
    pass


def signed_voice(port: int, n: int) -> bytes:
    """A signed first webhook of a call, as Heroku's router forwards it."""
    from twilio.request_validator import RequestValidator

    params = {
        "CallSid": f"CA{n:032x}",
        "AccountSid": "AC" + "0" * 32,
        "From": "+13125550123",
        "To": "+18005550100",
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    url = f"https://127.0.0.1:{port}/voice"
    body = urlencode(params).encode()
    head = (
        f"POST /voice HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Forwarded-Proto: https\r\n"
        "X-Forwarded-For: 192.0.2.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"X-Twilio-Signature: {RequestValidator(TOKEN).compute_signature(url, params)}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def webhook(port: int, n: int) -> float | None:
    """Seconds until a TwiML answer to a signed /voice, or None (no answer within 15 s)."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TWILIO_TIMEOUT) as sock:
            sock.sendall(signed_voice(port, n))
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
                if time.monotonic() - start > TWILIO_TIMEOUT:
                    return None
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    try:
        if ET.fromstring(body).tag != "Response":
            return None
    except ET.ParseError:
        return None
    return time.monotonic() - start


def send_webhooks(port: int, count: int, parallel: int, first: int) -> list[float | None]:
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda n: webhook(port, n), range(first, first + count)))


class SlowClients:
    """`count` connections kept open, each trickling one byte every `interval` seconds."""

    def __init__(self, port: int, count: int, interval: float, kind: str):
        self.port, self.count, self.interval, self.kind = port, count, interval, kind
        self.closed_by_server = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def request(self) -> bytes:
        return (
            f"POST /voice HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "X-Forwarded-Proto: https\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 1000\r\n\r\n"
        ).encode() + b"a" * 1000

    def open(self) -> tuple[socket.socket, int]:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sent = 0
        if self.kind == "body":
            sent = self.request().index(b"\r\n\r\n") + 4
            sock.sendall(self.request()[:sent])
        sock.setblocking(False)
        return sock, sent

    def run(self) -> None:
        conns = []
        for _ in range(self.count):
            try:
                conns.append(self.open())
            except OSError:
                pass
        data = self.request()
        while not self.stop.wait(self.interval):
            for i, (sock, sent) in enumerate(conns):
                try:
                    if sock.recv(4096) == b"":  # a refusal, or closed
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    sock.close()
                    self.closed_by_server += 1
                    try:
                        conns[i] = self.open()
                    except OSError:
                        pass
                    continue
                try:
                    sock.send(data[sent : sent + 1])
                    conns[i] = (sock, sent + 1)
                except OSError:
                    pass
        for sock, _ in conns:
            sock.close()

    def __enter__(self) -> SlowClients:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def memory_mb(pid: int) -> str:
    """VmRSS of the server's processes in MB: the total, then each (gunicorn's master first)."""
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    each = []
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                each.append(round(int(line.split()[1]) / 1024, 1))
    return f"{round(sum(each), 1)} ({' + '.join(map(str, each))})"


def stats(times: list[float | None]) -> dict[str, object]:
    done = sorted(t * 1000 for t in times if t is not None)
    if not done:
        return {"answered": f"0/{len(times)}", "p50": None, "p99": None, "max": None}
    p99 = done[min(len(done) - 1, round(0.99 * (len(done) - 1)))]
    return {
        "answered": f"{len(done)}/{len(times)}",
        "p50": round(statistics.median(done), 1),
        "p99": round(p99, 1),
        "max": round(done[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="procfile", help="procfile|gthread|a2wsgi|waitress")
    parser.add_argument("--slow", type=int, default=100, help="slow connections held open")
    parser.add_argument("--kind", default="body", choices=["body", "headers"])
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between bytes")
    parser.add_argument("--webhooks", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4, help="webhooks at a time")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds before the webhooks")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY")
    parser.add_argument("--threads", type=int, default=4, help="WEB_THREADS")
    args = parser.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="slowclients-")
    env = {k: v for k, v in os.environ.items() if k != "FLASK_DEBUG"}
    env.update(
        SECRET_KEY="s" * 32,
        TWILIO_AUTH_TOKEN=TOKEN,
        FIRM_PHONE_NUMBER="+13125550100",
        DATABASE_URL=f"sqlite:///{tmp}/bench.sqlite3",
        OFFICE_HOURS="always",
        FORWARDED_PROXIES="1",
        PYTHONPATH=str(ROOT),
    )
    subprocess.run(
        [str(Path(sys.executable).with_name("ivr")), "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    command = server_command(args.server, port, args.workers, args.threads)
    log = open(Path(tmp) / "web.log", "w")  # noqa: SIM115
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while webhook(port, 0) is None:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: see {log.name}")
            time.sleep(0.5)
        send_webhooks(port, args.webhooks, args.parallel, 1)  # every process and thread warm
        idle_mb = memory_mb(server.pid)
        baseline = send_webhooks(port, args.webhooks, args.parallel, 1000)
        with SlowClients(port, args.slow, args.interval, args.kind) as slow:
            time.sleep(args.settle)
            attacked = send_webhooks(port, args.webhooks, args.parallel, 2000)
            attack_mb = memory_mb(server.pid)
            closed = slow.closed_by_server
        before, during = stats(baseline), stats(attacked)
        ratio = (
            round(during["p50"] / before["p50"], 2)  # type: ignore[operator]
            if during["p50"] and before["p50"]
            else None
        )
        print(f"server: {args.server} ({shlex.join(command[2:])})")
        print(
            f"slow connections: {args.slow} ({args.kind}, a byte every {args.interval} s), "
            f"closed by the server and reopened: {closed}"
        )
        print(f"baseline: {before}")
        print(f"attacked: {during}")
        print(f"p50 ratio attacked/baseline: {ratio}")
        print(f"web RSS MB: idle {idle_mb}, under attack {attack_mb}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


if __name__ == "__main__":
    main()
