"""Count each call for the staff chart: one INSERT when the caller picks a language, kept cheap.

Every caller passes through this write, so it is the one database statement on the hotline's
hottest path. A Core `insert()` through a `Connection` costs about 90 µs of CPU here (connection
and transaction objects, an execution context, a result); this writes the same row for about 40 µs.
The statement is still made by SQLAlchemy: its SQL is compiled once per engine for that engine's
dialect, values go through each column type's own `bind_processor` (how SQLite stores a datetime),
and the DBAPI connection comes from the engine's pool (`Engine.raw_connection`, public API), so
pool pre-ping and pool limits still apply. The row is read back through the ORM like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from .db import utcnow
from .models import Call

log = logging.getLogger(__name__)
COLUMNS = ("call_sid", "language", "from_number", "created_at")


class CallLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        table = Call.__table__
        compiled = sa.insert(table).compile(dialect=dialect, column_keys=list(COLUMNS))
        self.sql = compiled.string
        # qmark/format drivers (sqlite3) take a tuple in this order; pyformat ones (psycopg) a dict.
        self.positions = tuple(compiled.positiontup) if compiled.positional else None
        self.processors: dict[str, Callable[[Any], Any] | None] = {
            name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in COLUMNS
        }
        self.dbapi = dialect.loaded_dbapi

    def add(self, call_sid: str, language: str, from_number: str) -> bool:
        """Store one call; False when it was already stored (Twilio retried the request) or the
        database failed (logged: the caller goes on regardless)."""
        row = {"call_sid": call_sid, "language": language, "from_number": from_number,
               "created_at": utcnow()}
        for name, process in self.processors.items():
            if process is not None:
                row[name] = process(row[name])
        params = tuple(row[name] for name in self.positions) if self.positions else row
        try:
            connection = self.engine.raw_connection()
        except sa.exc.SQLAlchemyError:
            log.warning("could not count call %s: no database connection", call_sid, exc_info=True)
            return False
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self.sql, params)
            finally:
                cursor.close()
            connection.commit()
            return True
        except self.dbapi.IntegrityError:
            self._rollback(connection)
            return False  # already counted
        except self.dbapi.Error:
            self._rollback(connection)
            log.warning("could not count call %s", call_sid, exc_info=True)
            return False
        finally:
            connection.close()  # back to the pool

    def _rollback(self, connection: Any) -> None:
        try:
            connection.rollback()
        except self.dbapi.Error:
            pass  # a broken connection: the pool discards or resets it on return
