"""What the process itself must be before it serves anyone: never in debug under gunicorn,
logging at INFO, and every file it writes readable by its own user only."""

from __future__ import annotations

import logging
import os

from flask import Flask

from ivr.settings import SettingsError


def init_app(app: Flask) -> None:
    refuse_debug_under_gunicorn(app)
    logging.basicConfig(level=logging.INFO)
    # twilio-python logs every request and response at INFO (about ten lines per API call); the
    # jobs log their own one line per failure.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    # Whatever this process writes (the SQLite database and its WAL, the journal file) holds
    # callers' numbers, recordings or password hashes: readable by its own user only.
    os.umask(0o077)


def refuse_debug_under_gunicorn(app: Flask) -> None:
    # gunicorn sets SERVER_SOFTWARE in its own environment; debug turns off Secure cookies and
    # https, and would show tracebacks to anyone.
    if app.debug and os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        raise SettingsError(
            "FLASK_DEBUG is on under gunicorn: debug mode is for `ivr run` on your own machine "
            "only. Unset FLASK_DEBUG (or set it to 0) where gunicorn serves the hotline."
        )
