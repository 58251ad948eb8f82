"""Count each call for the staff chart, off the caller's path: queued, then written in batches.

Every caller picks a language, so this is the one database write that every call makes. Written in
the webhook, it was the largest single cost of the hotline's busiest step: on SQLite a commit, on
PostgreSQL a pool ping, an insert and a commit, all while the caller waits. Instead each web process
queues the row (a list append) and one thread per process writes what has queued every
CALL_COUNT_FLUSH_SECONDS (1 s) in one transaction.

What this trades: a process killed outright (SIGKILL, a crashed dyno) loses the counts of its last
second. A normal stop (SIGTERM, a deploy, gunicorn's worker restarts) writes them at exit, and a
database that is down keeps them queued (up to `limit` rows) until it is back, where the old
in-request write dropped them. These rows are statistics for the staff chart: nothing a caller said
or asked for is in them (callback requests are written in the request, always). The calling
number kept here is only a fallback for the recording status callback, which the `<Record>` action
backs up with the caller's own From. CALL_COUNT_FLUSH_SECONDS=0 writes each row in its request.

The statement is made by SQLAlchemy: compiled once per engine for its dialect, values through each
column type's own `bind_processor`, DBAPI connections from the engine's pool
(`Engine.raw_connection`, public API). The rows read back through the ORM like any other.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from .db import utcnow
from .models import Call

log = logging.getLogger(__name__)
COLUMNS = ("call_sid", "language", "from_number", "created_at")


class CallLog:
    def __init__(self, engine: sa.Engine, flush_every: float = 1.0, limit: int = 10_000) -> None:
        self.engine = engine
        self.flush_every = flush_every
        self.limit = limit
        dialect = engine.dialect
        table = Call.__table__
        # inline(): no RETURNING of the new id, which nobody reads.
        compiled = sa.insert(table).inline().compile(dialect=dialect, column_keys=list(COLUMNS))
        self.sql = compiled.string
        # qmark/format drivers (sqlite3) take a tuple in this order; pyformat ones (psycopg) a dict.
        self.positions = tuple(compiled.positiontup) if compiled.positional else None
        self.processors: dict[str, Callable[[Any], Any] | None] = {
            name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in COLUMNS
        }
        self.dbapi = dialect.loaded_dbapi
        # The DBAPI's own errors, and SQLAlchemy's (the pool wraps a failed connect in them).
        self.errors = (self.dbapi.Error, sa.exc.SQLAlchemyError)
        # Errors about the rows themselves, not the database: a retry would fail the same way.
        self.refused = (self.dbapi.IntegrityError, self.dbapi.DataError)
        self._queue: list[Any] = []
        self._dropped = 0
        self._lock = threading.Lock()  # guards the queue
        self._flushing = threading.Lock()  # one writer at a time: the thread, exit, tests
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, call_sid: str, language: str, from_number: str) -> None:
        """Count one call: queued for the next batch, or written now when flush_every is 0."""
        # Cut to the columns' lengths: one over-long value must not fail a whole batch.
        row = (call_sid[:64], language[:2], from_number[:255], utcnow())
        if not self.flush_every:
            try:
                self._write([row])
            except self.errors:
                log.warning("could not count call %s", call_sid, exc_info=True)
            return
        with self._lock:
            if self._pid != os.getpid():
                self._start()  # first call in this process (gunicorn forks after import)
            self._queue.append(row)
            self._trim()

    def flush(self) -> int:
        """Write every queued row now; on a database error keep them queued for the next try."""
        with self._flushing:
            with self._lock:
                batch, self._queue = self._queue, []
                dropped, self._dropped = self._dropped, 0
            if dropped:
                log.warning("call log queue full: dropped the %d oldest call counts", dropped)
            if not batch:
                return 0
            try:
                return self._write(batch)
            except self.errors:
                log.warning("could not count %d calls; kept for the next try", len(batch),
                            exc_info=True)
                with self._lock:
                    self._queue[:0] = batch
                    self._trim()
                return 0

    def close(self, timeout: float = 10) -> None:
        """Stop this process's writer and write what is left (at exit, and in tests)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        atexit.unregister(self.close)
        self.flush()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._queue = []  # rows copied from a parent process are the parent's to write
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ivr-call-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_every):
            try:
                self.flush()
            except Exception:  # never let the writer die: the next round tries again
                log.exception("call log writer failed")

    def _trim(self) -> None:
        """Keep at most `limit` rows (the newest) while the database is unreachable."""
        extra = len(self._queue) - self.limit
        if extra > 0:
            del self._queue[:extra]
            self._dropped += extra  # logged once per flush, not once per call

    def _params(self, row: tuple) -> Any:
        """A queued (call_sid, language, from_number, created_at) as the driver's parameters."""
        values = {}
        for name, value in zip(COLUMNS, row, strict=True):
            process = self.processors[name]
            values[name] = process(value) if process is not None else value
        return tuple(values[name] for name in self.positions) if self.positions else values

    def _write(self, rows: list[tuple]) -> int:
        """Insert `rows` in one transaction. If the database refuses the batch for what is in it
        (a CallSid already stored because Twilio retried a request, a value it will not take),
        each row is tried alone and only the refused ones are skipped. Returns the number of new
        rows; raises when the database itself fails (unreachable, a missing table), so that the
        caller keeps the rows for the next try."""
        batch = [self._params(row) for row in rows]
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                try:
                    cursor.executemany(self.sql, batch)
                    connection.commit()
                    return len(batch)
                except self.refused:
                    connection.rollback()
                written = 0
                for params in batch:  # one by one, so a refused row loses only itself
                    try:
                        cursor.execute(self.sql, params)
                        connection.commit()
                        written += 1
                    except self.dbapi.IntegrityError:
                        connection.rollback()  # already counted
                    except self.refused:
                        connection.rollback()
                        log.warning("call count refused by the database: %r", params,
                                    exc_info=True)
                return written
            finally:
                cursor.close()
        except self.dbapi.Error:
            try:
                connection.rollback()
            except self.dbapi.Error:
                pass  # a broken connection: the pool discards or resets it on return
            raise
        finally:
            connection.close()  # back to the pool
