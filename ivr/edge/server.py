"""How a web process reads requests: whole, in an event loop, before a thread of the app takes one.

The app's threads are few (WEB_THREADS per process) and must stay free for Twilio's webhooks. A
threaded server hands a thread the connection and lets it read the request: a client that sends
its headers and then one byte every few seconds held a thread each, and 8 such connections left
the hotline unable to answer any call (reviews/security.md, M3). Here gunicorn still runs the
processes (WEB_CONCURRENCY, restarts, SIGTERM drain, the post_worker_init hook), but each process
is uvicorn's asyncio HTTP server (`uvicorn-worker`), where a slow connection costs a socket and a
few kilobytes, not a thread, and:

- `Protocol`: the request line and headers must arrive within HEADER_SECONDS of the connection's
  start (uvicorn sets no such limit), or the connection is closed;
- `ReadWhole`: the body must arrive within BODY_SECONDS (408 otherwise) and be no larger than the
  app's MAX_CONTENT_LENGTH (413, without reading the rest); only then is the request passed on,
  whole, to the Flask app in a pool of WEB_THREADS threads (`a2wsgi`, which by itself would let a
  thread wait on the body);
- with `keepalive = 0` (gunicorn.conf.py) every answer says `Connection: close`, so a client
  (Heroku's router) never sends a request on a connection the server is closing;
- `Gate`: a process takes new connections only while one of its threads is free, so under a burst
  they wait in the listen queue all processes share (uvicorn alone would take them all);
- `AccessLog`: gunicorn's access log, in its format, as under gunicorn's own workers.

bench/slowclients.py measures it; README, "Deploying", says why this and not waitress or nginx.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import sys
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import h11
from a2wsgi import WSGIMiddleware
from a2wsgi.asgi_typing import ASGIApp, Receive, ReceiveEvent, Scope, Send, SendEvent
from a2wsgi.wsgi import build_environ
from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from ivr.edge import limits

# Twilio's webhooks and the staff forms come in one or two packets; a phone on a weak connection
# sends 64 KiB in well under 10 s. A client slower than this is refused, not waited for.
HEADER_SECONDS = 10.0
BODY_SECONDS = 10.0


class Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for each request's line and headers: from
    the connection's start, or on a kept-alive connection from the request's first byte (until
    then uvicorn's keep-alive timeout applies)."""

    deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self.deadline is None:
            self._arm()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in: the body has ReadWhole
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self.deadline = self.loop.call_later(HEADER_SECONDS, self._too_slow)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _too_slow(self) -> None:
        self.deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


async def refuse(send: Send, status: int) -> None:
    """Answer `status` with no body and close the connection (the rest of the body is unread)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", b"0"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class Gate:
    """Open while a thread of the app is free: a process takes new connections only then, as
    gunicorn's threaded workers did (worker_connections = threads). When every thread is busy,
    new connections wait in the listen queue that all the processes share, for whichever process
    frees a thread first, instead of queueing inside one; so a process that is killed (kill -9,
    out of memory) loses the requests it was serving, not a queue of others' (bench/burst.py
    --fault kill-web). Slow clients do not count: they are still being read, not served."""

    def __init__(self, threads: int) -> None:
        self.threads, self.busy = threads, 0
        self.free = asyncio.Event()
        self.free.set()

    def enter(self) -> None:
        self.busy += 1
        if self.busy >= self.threads:
            self.free.clear()

    def leave(self) -> None:
        self.busy -= 1
        if self.busy < self.threads:
            self.free.set()


class ReadWhole:
    """ASGI middleware: read the body whole, within `seconds` and `limit` bytes, then pass the
    request on with its body already in memory, framed by Content-Length (a chunked body too,
    which Werkzeug and ivr/edge/limits.py then check as any other)."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        gate: Gate | None = None,
        close: bool = False,
        seconds: float = BODY_SECONDS,
    ) -> None:
        self.app, self.limit, self.gate, self.seconds = app, limit, gate, seconds
        self.close = close  # say `Connection: close` on every answer (keep-alive off)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [
            (n, v)
            for n, v in scope["headers"]
            if n not in (b"content-length", b"transfer-encoding")
        ]
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await refuse(send, 413 if declared.isdigit() else 400)
            return
        body = bytearray()
        try:
            async with asyncio.timeout(self.seconds):
                more = True
                while more:
                    message = await receive()
                    if message["type"] != "http.request":  # the client went away
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.limit:
                        await refuse(send, 413)
                        return
        except TimeoutError:
            await refuse(send, 408)
            return
        whole: ReceiveEvent = {"type": "http.request", "body": bytes(body), "more_body": False}
        given = False

        async def replay() -> ReceiveEvent:
            nonlocal given
            if given:
                return await receive()  # http.disconnect, when the client goes
            given = True
            return whole

        async def sending(message: SendEvent) -> None:
            if message["type"] == "http.response.start" and self.close:
                message = {**message, "headers": [*message["headers"], (b"connection", b"close")]}
            await send(message)

        headers.append((b"content-length", str(len(body)).encode()))
        if self.gate is not None:
            self.gate.enter()
        try:
            await self.app({**scope, "headers": headers}, replay, sending)
        finally:
            if self.gate is not None:
                self.gate.leave()


class AccessLog:
    """ASGI middleware: a line per request in gunicorn's access log, in its `access_log_format`
    (uvicorn's own access log has a fixed format and no times). `%(D)s` is the microseconds from
    the headers read to the answer's last byte handed to the socket; bench/burst.py reads it."""

    def __init__(self, app: ASGIApp, log: Any) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        response = SimpleNamespace(status="-", headers=[], sent=0)

        async def sending(message: SendEvent) -> None:
            if message["type"] == "http.response.start":
                response.status = str(message["status"])
                response.headers = [
                    (k.decode("latin1"), v.decode("latin1")) for k, v in message.get("headers", [])
                ]
            elif message["type"] == "http.response.body":
                response.sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            environ: dict[str, Any] = dict(build_environ(scope, None))  # type: ignore[arg-type]
            query = scope["query_string"].decode("latin1")
            environ["RAW_URI"] = scope["raw_path"].decode("latin1") + (f"?{query}" if query else "")
            headers = [(k.decode("latin1"), v.decode("latin1")) for k, v in scope["headers"]]
            took = timedelta(seconds=time.monotonic() - start)
            self.log.access(response, headers, environ, took)


class Worker(UvicornWorker):
    """gunicorn's worker class for the Procfile's `web:` (gunicorn.conf.py): uvicorn's asyncio
    server over gunicorn's socket, serving the Flask app through ReadWhole and a2wsgi."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "asyncio",
        "http": Protocol,
        "lifespan": "off",  # the Flask app has no start-up or shutdown of its own to run
        # The app's ProxyFix decides which X-Forwarded-* to believe (FORWARDED_PROXIES); uvicorn
        # must not apply them a first time on its own rules.
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,  # AccessLog writes gunicorn's instead
    }

    def load_wsgi(self) -> None:
        """Wrap the Flask app gunicorn loaded; `flask_app` keeps it for post_worker_init."""
        super().load_wsgi()
        app: Any = self.wsgi  # type: ignore[has-type]
        self.flask_app = app
        limit = getattr(app, "config", {}).get("MAX_CONTENT_LENGTH") or limits.LIMIT
        self.gate = Gate(self.cfg.threads)
        pool = WSGIMiddleware(app, workers=self.cfg.threads)
        whole = ReadWhole(pool, limit, self.gate, close=not self.cfg.keepalive)
        self.wsgi = AccessLog(whole, self.log) if self.log.access_log_enabled else whole

    async def _serve(self) -> None:
        """uvicorn's server, with this process's own accept loop on gunicorn's sockets, so that
        it takes connections only while the Gate is open (uvicorn would take them all)."""
        self.config.app = self.wsgi
        server = Server(config=self.config)
        self._install_sigquit_handler()
        serving = asyncio.create_task(server.serve(sockets=[]))  # connections come from below
        while not (server.started or serving.done()):
            await asyncio.sleep(0.01)
        accepting = [asyncio.create_task(self._accept(server, s)) for s in self.sockets]
        while not (server.should_exit or serving.done()):
            await asyncio.sleep(0.1)
        for task in accepting:
            task.cancel()
        for listener in self.sockets:  # new connections are refused once all processes stop
            listener.close()
        await serving
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    async def _accept(self, server: Server, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        protocol = functools.partial(
            self.config.http_protocol_class,
            config=self.config,
            server_state=server.server_state,
            app_state=server.lifespan.state,
        )
        while True:
            await self.gate.free.wait()
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as error:  # out of file descriptors, say: as asyncio, try again soon
                self.log.warning("cannot accept a connection: %s", error)
                await asyncio.sleep(1)
                continue
            try:
                await loop.connect_accepted_socket(protocol, connection)
            except OSError:  # gone already
                connection.close()
