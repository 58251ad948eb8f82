"""Twilio's REST API (and an SMTP server) faked on loopback, for `bench/burst.py`.

The app reaches api.twilio.com through twilio-python and `requests`, which honour HTTPS_PROXY:
this process is that proxy. It answers CONNECT, ends TLS itself with a certificate for
api.twilio.com from a throwaway CA (`trustme`; the CA goes to `--ca`, which the app trusts via
REQUESTS_CA_BUNDLE), and answers as Twilio would after `--delay` seconds: a recording's .mp3
with about 96 kB, DELETE with 204, a Messages POST with 201 and JSON. In `hang` mode it accepts
connections and never answers, as a black-holed route does. Every request is one JSON line in
`--events`, so the benchmark can count copies, deletes and SMS (and SMS sent twice).

With `--smtp-port`, an aiosmtpd server on loopback takes alert e-mails and logs each one too.
Not a test; started and stopped by `bench/burst.py`.
"""

from __future__ import annotations

import argparse
import http.server
import json
import re
import secrets
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from pathlib import Path

AUDIO = b"ID3" + bytes(96 * 1024)


class Events:
    """Append one JSON line per request; lines from many threads never interleave."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", buffering=1)
        self.lock = threading.Lock()

    def log(self, **event) -> None:
        event["t"] = time.time()
        with self.lock:
            self.file.write(json.dumps(event) + "\n")


class TwilioAPI(http.server.BaseHTTPRequestHandler):
    """What api.twilio.com answers, over the TLS connection the proxy ended."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-twilio"

    def log_message(self, *args) -> None:  # the events file is the log
        pass

    def reply(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
        time.sleep(self.server.delay)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self.server.events.log(method="GET", path=self.path)
        if re.search(r"/Recordings/RE[0-9a-f]{32}(\.mp3|\.wav)?(\?|$)", self.path):
            self.reply(200, AUDIO, "audio/mpeg")
        else:
            self.reply(404, b'{"code": 20404, "message": "not found", "status": 404}')

    def do_DELETE(self) -> None:
        self.server.events.log(method="DELETE", path=self.path)
        self.reply(204)

    def do_POST(self) -> None:
        form = self.body().decode("utf-8", "replace")
        self.server.events.log(method="POST", path=self.path, form=form)
        if self.path.endswith("/Messages.json"):
            sid = "SM" + secrets.token_hex(16)
            self.reply(201, json.dumps({"sid": sid, "status": "queued"}).encode())
        else:
            self.reply(404, b'{"code": 20404, "message": "not found", "status": 404}')


class Proxy(socketserver.BaseRequestHandler):
    """An HTTPS proxy that answers CONNECT to api.twilio.com itself, over TLS."""

    def handle(self) -> None:
        server = self.server
        sock = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        server.events.log(method="CONNECT", path=line)
        if server.mode == "hang":
            while sock.recv(4096):  # never answer; wait for the client to give up
                pass
            return
        sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            tls = server.tls.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            TwilioAPI(tls, self.client_address, server)
        except (ssl.SSLError, OSError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass


class ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


def smtp_server(port: int, events: Events):
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            events.log(
                method="SMTP",
                path=",".join(envelope.rcpt_tos),
                form=envelope.content.decode("utf-8", "replace")[:2000],
            )
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["ok", "hang"], default="ok")
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--ca", type=Path, required=True, help="where to write the CA (PEM)")
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--smtp-port", type=int, default=0)
    args = parser.parse_args()

    import trustme

    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("api.twilio.com").configure_cert(tls)
    events = Events(args.events)
    server = ProxyServer(("127.0.0.1", args.port), Proxy)
    server.mode, server.delay, server.tls, server.events = args.mode, args.delay, tls, events
    smtp = smtp_server(args.smtp_port, events) if args.smtp_port else None
    tmp = args.ca.with_suffix(".tmp")
    ca.cert_pem.write_to_path(str(tmp))
    tmp.rename(args.ca)  # appears whole: the benchmark waits for this file to start the app

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if smtp:
            smtp.stop()
    sys.exit(0)


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
