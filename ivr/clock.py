"""One clock for the whole app: what every "now" is read from.

Tests pass CLOCK (a function returning an aware datetime) in create_app's config to place a call,
a request or a job at a chosen moment; every reader (the office calendar, the rows' timestamps
through `ivr.db.utcnow`, the job queue, the dashboard) then agrees on the time. Without it, and
outside an app, it is the system's clock in UTC.
"""

from __future__ import annotations

import datetime as dt

from flask import current_app, has_app_context


def now() -> dt.datetime:
    """The current moment, timezone-aware (UTC unless a test's CLOCK says otherwise)."""
    if has_app_context():
        clock = current_app.config.get("CLOCK")  # a test hook, not a setting
        if clock is not None:
            return clock()
    return dt.datetime.now(dt.UTC)
