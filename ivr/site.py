"""The app's own address: a page that says where you are, and a health check for the platform.

`/` answers whoever opens the app's address (after `scripts/run`, or the deployed URL) with the
firm's name and the way to the staff login, instead of a bare 404. `/healthz` tells the platform's
health check (or an uptime monitor) whether this process and its database answer; it needs no
login and says nothing about callers.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, render_template
from sqlalchemy.pool import NullPool

from ivr.db import db
from ivr.settings import settings

bp = Blueprint("site", __name__)

NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/")
def home():
    return render_template("site/home.html"), NO_STORE


@bp.get("/healthz")
def healthz():
    try:
        with health_engine(current_app).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        # One line, no traceback: a monitor polling a dead database would flood the log.
        current_app.logger.warning(
            "health check: database not answering (%s)",
            type(getattr(exc, "orig", None) or exc).__name__,
        )
        return {"status": "unavailable", "database": "not answering"}, 503, NO_STORE
    return {"status": "ok", "database": "ok"}, 200, NO_STORE


def health_engine(app: Flask) -> sa.Engine:
    """An engine of its own, with short timeouts and no pool.

    Not the app's pool: its statements have no time limit (a call's writes must not be cut
    short), and a check must not wait behind webhooks for a pooled connection. A new connection
    per check costs a few milliseconds, and proves the database takes connections, which is what
    callers need.
    """
    engine = app.extensions.get("ivr.health_engine")
    if engine is None:
        # DB_TIMEOUT_SECONDS, as for webhooks: a hung server answers 503 within it, rather than
        # holding the check (and a web worker) until the TCP timeout.
        timeout = settings(app).db_timeout_seconds
        url = db.engine.url
        if url.get_backend_name() == "postgresql":
            args = {
                "connect_timeout": max(1, round(timeout)),  # libpq: whole seconds
                "options": f"-c statement_timeout={round(timeout * 1000)}",
            }
        else:
            args = {"timeout": timeout}  # SQLite: how long to wait for a locked file
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=args)
        app.extensions["ivr.health_engine"] = engine
    return engine
