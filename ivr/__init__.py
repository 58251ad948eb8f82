"""The J. Molina Law Firm hotline: a bilingual Twilio voice app built by `create_app`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from ivr import db as database
from ivr import settings
from ivr.calls.prompts import Prompts
from ivr.edge import limits, logmask
from ivr.edge.signatures import Signatures

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, or from `test_config` (strings parsed the same way).

    Settings are checked here, so a bad one stops the process at start-up, not mid-call.
    """
    app = Flask(__name__, instance_relative_config=True)
    source = (
        os.environ
        if test_config is None
        else {k: v for k, v in test_config.items() if isinstance(v, str)}
    )
    app.config.update(settings.load(source))
    if test_config:
        names = {s.name for s in settings.SETTINGS}
        app.config.update(
            {k: v for k, v in test_config.items() if k not in names or not isinstance(v, str)}
        )
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # Flask's defaults already hold these keys (Secure off, 31 days), so setdefault would never
    # apply: set them unless test_config chose its own. https only outside debug and tests; a
    # staff login ends 12 hours after it was made (staff/auth.py), even if its cookie was copied.
    for name, value in (
        ("MAX_CONTENT_LENGTH", limits.LIMIT),  # see limits.py
        ("SESSION_COOKIE_SECURE", not (app.debug or app.testing)),
        ("REMEMBER_COOKIE_SECURE", not (app.debug or app.testing)),
        ("REMEMBER_COOKIE_HTTPONLY", True),
        ("HTTPS_ONLY", not (app.debug or app.testing)),
        ("PERMANENT_SESSION_LIFETIME", 12 * 60 * 60),
    ):
        if name not in (test_config or {}):
            app.config[name] = value
    if app.debug and os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        # gunicorn sets SERVER_SOFTWARE in its own environment; debug turns off Secure cookies
        # and https, and would show tracebacks to anyone.
        raise settings.SettingsError(
            "FLASK_DEBUG is on under gunicorn: debug mode is for `ivr run` on your own machine "
            "only. Unset FLASK_DEBUG (or set it to 0) where gunicorn serves the hotline."
        )
    logging.basicConfig(level=logging.INFO)
    logmask.install()  # phone numbers and A-numbers never reach a log line (edge/logmask.py)
    # twilio-python logs every request and response at INFO (about ten lines per API call); the
    # jobs log their own one line per failure.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    # Whatever this process writes (the SQLite database and its WAL, the journal file) holds
    # callers' numbers, recordings or password hashes: readable by its own user only.
    os.umask(0o077)

    # Behind a proxy that terminates TLS (Heroku's router: FORWARDED_PROXIES=1), take the client
    # address, scheme and port from the values that many proxies appended, so the URL checked
    # against X-Twilio-Signature is the https URL Twilio signed and login rate limits see the
    # real client. Without a proxy anyone could send these headers: they are ignored. The host
    # is never taken from X-Forwarded-Host (Heroku passes a client's through; see PUBLIC_URL).
    proxies = app.config["FORWARDED_PROXIES"]
    if proxies:
        # Flask's documented way to add WSGI middleware; mypy sees wsgi_app only as a method.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=0, x_port=proxies
        )
    if not app.config["PUBLIC_URL"] and not (app.debug or app.testing):
        app.logger.warning(
            "PUBLIC_URL is not set: webhook signatures are checked against the Host header, so "
            "a signature Twilio made for another copy of this app would be accepted here"
        )

    prompts_dir = Path(app.config["PROMPTS_DIR"] or PROJECT_ROOT / "prompts")
    app.config["PROMPTS_DIR"] = str(prompts_dir)
    app.config["AUDIO_DIR"] = str(app.config["AUDIO_DIR"] or PROJECT_ROOT / "audio")
    app.extensions["ivr.calls.prompts"] = Prompts(prompts_dir)
    app.extensions["ivr.edge.signatures"] = Signatures(
        app.config["TWILIO_AUTH_TOKEN"], app.config["TWILIO_WEBHOOK_SHARED_KEYS"]
    )

    database.init_app(app)
    if not app.config["TWILIO_ACCOUNT_SID"]:
        app.logger.warning(
            "TWILIO_ACCOUNT_SID is not set: recordings cannot be copied from Twilio for staff to "
            "play, and SMS alerts are off (fine for local use without a Twilio account)"
        )

    from ivr import site, staff, voice
    from ivr.background import jobs
    from ivr.calls import audio
    from ivr.edge import headers, https
    from ivr.messaging import email, gateway
    from ivr.requests import alerts, erasure, fallback, recordings, retention, sms
    from ivr.requests.service import callers, calling

    app.before_request(limits.refuse_large_bodies)
    https.init_app(app)
    headers.init_app(app)  # security headers on every response
    app.register_blueprint(voice.bp)
    app.register_blueprint(site.bp)
    audio.init_app(app)
    staff.init_app(app)
    # One Twilio gateway and one SMTP sender, with timeouts, for every job and command.
    gateway.init_app(app)
    email.init_app(app)
    # Every kind of background job, registered here and nowhere else (docs/background.md).
    jobs.init_app(
        app,
        kinds=(
            alerts.ALERT_SMS,
            alerts.ALERT_EMAIL,
            alerts.LOCKED_SMS,
            alerts.LOCKED_EMAIL,
            alerts.ADDED_SMS,
            alerts.ADDED_EMAIL,
            sms.REFERENCE_SMS,
            calling.STAFF_CALL,
            recordings.COPY_RECORDING,
            recordings.COPY_MESSAGE,
            recordings.DELETE_RECORDING,
            erasure.REDACT_MESSAGE,
            retention.RETENTION,
        ),
        every_minute=(recordings.queue_missing, retention.queue_daily),
        at_start=(fallback.init_app,),
    )
    # The fallback journal replays through the request service (requests/service/callers.py).
    callers.init_app(app)
    return app
