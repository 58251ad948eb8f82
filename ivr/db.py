"""The database: one SQLAlchemy extension, a declarative base, and the URL the app uses.

Web processes are several and their disks are wiped on restart, so everything that must be kept
(requests, recordings, staff accounts, alerts) lives in the database named by DATABASE_URL. SQLite
in the instance folder is the default for trying the hotline on one machine.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging

from flask import Flask
from flask_sqlalchemy_lite import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase

from ivr import clock
from ivr.settings import settings

db = SQLAlchemy()

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Model(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    """Now, for rows' timestamps: the app's one clock (a test's CLOCK, or the system's)."""
    return clock.now()


def as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; the app only ever stores UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def init_app(app: Flask) -> None:
    url = settings(app).database_url  # never empty: settings.init_app resolves the default
    # A webhook never waits long for the database: a connection from the pool, a new connection,
    # or SQLite's write lock within DB_TIMEOUT_SECONDS, or the step goes to the fallback.
    # No bound parameters (phone numbers, A-numbers) in SQLAlchemy's error messages.
    timeout = settings(app).db_timeout_seconds
    engine_options: dict = {"url": url, "hide_parameters": True}
    if url.rstrip("/") not in ("sqlite:", "sqlite://"):  # in-memory SQLite has no pool to wait on
        engine_options["pool_timeout"] = timeout
    if url.startswith("postgresql"):
        engine_options["pool_pre_ping"] = True
        engine_options["connect_args"] = {"connect_timeout": max(1, round(timeout))}
    app.extensions["ivr.sqlite_busy_ms"] = int(timeout * 1000)
    app.config.setdefault("SQLALCHEMY_ENGINES", {"default": engine_options})
    db.init_app(app)
    # The extension also registers a teardown for async sessions, which Flask runs through
    # asgiref on a worker thread after every request (about 0.7 ms each). This app has no async
    # sessions, and the webhooks' latency is what callers wait on.
    app.teardown_appcontext_funcs[:] = [
        func for func in app.teardown_appcontext_funcs if not inspect.iscoroutinefunction(func)
    ]
    # Registered after the extension's, so it runs first: a connection that died during the
    # request (a database restart) makes the closing rollback fail; that must not turn an answer
    # already given into a 500. The dead connection is dropped, and the pool makes a new one.
    app.teardown_appcontext(_close_quietly)
    if url.startswith("sqlite"):
        with app.app_context():
            busy_ms = app.extensions["ivr.sqlite_busy_ms"]
            event.listen(db.engine, "connect", _sqlite_pragmas(busy_ms))


def _close_quietly(_error: BaseException | None) -> None:
    session = db.session
    try:
        session.close()
    except SQLAlchemyError as exc:
        logging.getLogger(__name__).warning(
            "database connection lost at the end of a request: %s", str(exc).splitlines()[0][:160]
        )
        try:
            session.invalidate()
        except SQLAlchemyError:
            pass


def _sqlite_pragmas(busy_ms: int):
    def connect(connection, _record) -> None:
        """WAL lets readers and a writer share the file; NORMAL sync is durable in WAL mode.
        secure_delete overwrites deleted and erased content with zeros instead of leaving it in
        free pages (some SQLite builds default to it, not all); see `checkpoint` for the WAL."""
        cursor = connection.cursor()
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    return connect


def checkpoint() -> None:
    """After an erase on SQLite: copy the WAL into the database file and truncate it, so the
    erased values' old pages do not linger in the WAL (secure_delete zeroes them in the file).
    A reader holding an old snapshot may keep the WAL from being truncated: then the next
    checkpoint does it. Nothing to do on PostgreSQL (see the README on its WAL and backups)."""
    if db.engine.dialect.name != "sqlite":
        return
    with db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
