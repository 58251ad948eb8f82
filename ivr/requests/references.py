"""References callers hear, unique even while the database is down.

A caller hears their reference right after recording, whether or not the database can store the
request at that moment. So each process keeps a small stash of references reserved in the
database in advance (a unique row each in `reserved_references`); a reference is taken from the
stash without touching the database, and the stash is refilled in one short statement when it runs
low and the database answers. A reserved reference that is never used (its process ended) is
simply never heard. Only when a process has never reached its database since it started is a
reference made from the CallSid instead (logged; see `from_call_sid`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import threading
import time

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import DateTime, String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from ivr.db import Model, db, utcnow

log = logging.getLogger(__name__)

STASH = 20  # references kept per process
LOW = 10  # refill below this


class ReservedReference(Model):
    """A reference handed to one process, so no other process or request can use it."""

    __tablename__ = "reserved_references"

    reference: Mapped[str] = mapped_column(String(12), primary_key=True)
    reserved_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def random_reference() -> str:
    return f"{secrets.randbelow(900000) + 100000}"


def _reserve(count: int) -> list[str]:
    """Insert `count` fresh references; return those that were free (a clash is just skipped)."""
    session = db.session
    wanted = {random_reference() for _ in range(count)}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    got = session.scalars(
        insert(ReservedReference)
        .values([{"reference": ref, "reserved_at": now} for ref in sorted(wanted)])
        .on_conflict_do_nothing(index_elements=["reference"])
        .returning(ReservedReference.reference)
    ).all()
    session.commit()
    return list(got)


class Stash:
    """This process's reserved references (one per app: tests run several apps at once)."""

    def __init__(self) -> None:
        self.references: list[str] = []
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.retry_at = 0.0  # after a failed refill, wait a little before asking again

    def refill(self) -> None:
        """Top up when low; a database error leaves the stash as it is."""
        with self.lock:
            if self.pid != os.getpid():  # a forked process must not share its parent's
                self.references, self.pid = [], os.getpid()
            if len(self.references) >= LOW or time.monotonic() < self.retry_at:
                return
            need = STASH - len(self.references)
        try:
            got = _reserve(need)
        except sa.exc.SQLAlchemyError as exc:
            db.session.rollback()
            self.retry_at = time.monotonic() + 5
            log.warning("could not reserve references: %s", str(exc).splitlines()[0][:200])
            return
        with self.lock:
            self.references.extend(got)

    def take(self) -> str | None:
        self.refill()
        with self.lock:
            return self.references.pop() if self.references else None


def stash() -> Stash:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("ivr.requests.references")
    if found is None:
        found = app.extensions["ivr.requests.references"] = Stash()
    return found


def top_up() -> None:
    """Refill this process's stash if it is low (one short statement, once in ~10 calls)."""
    stash().refill()


def take(call_sid: str) -> str:
    """A reference for a new request, without waiting on the database when the stash has one."""
    return stash().take() or from_call_sid(call_sid)


def from_call_sid(call_sid: str) -> str:
    """Last resort: nine digits from the CallSid (unique per call; 9 digits so it cannot clash
    with a reserved six-digit reference, and a clash of two is one in a billion per pair)."""
    log.warning("no reserved reference left: reference for call %s made from its CallSid", call_sid)
    number = int(hashlib.sha256(call_sid.encode()).hexdigest(), 16) % 900_000_000
    return str(number + 100_000_000)
