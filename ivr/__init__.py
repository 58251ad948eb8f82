"""The J. Molina Law Firm hotline: a bilingual Twilio voice app built by `create_app`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import db as database
from . import settings
from .prompts import Prompts
from .signatures import Signatures
from .twiml import LRU
from .wrappers import HotlineFlask

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, or from `test_config` (strings parsed the same way).

    Settings are checked here, so a bad one stops the process at start-up, not mid-call.
    """
    app = HotlineFlask(__name__, instance_relative_config=True)
    source = os.environ if test_config is None else {
        k: v for k, v in test_config.items() if isinstance(v, str)
    }
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
    for name, value in (("SESSION_COOKIE_SECURE", not (app.debug or app.testing)),
                        ("REMEMBER_COOKIE_SECURE", not (app.debug or app.testing)),
                        ("REMEMBER_COOKIE_HTTPONLY", True),
                        ("HTTPS_ONLY", not (app.debug or app.testing)),
                        ("PERMANENT_SESSION_LIFETIME", 12 * 60 * 60)):
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
    # Whatever this process writes (the SQLite database and its WAL, the journal file) holds
    # callers' numbers, recordings or password hashes: readable by its own user only.
    os.umask(0o077)

    # Heroku's router terminates TLS: trust one proxy for the client address, scheme, host and
    # port, so the URL checked against X-Twilio-Signature is the https URL Twilio signed and
    # login rate limits see the real client rather than the router.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)

    prompts_dir = Path(app.config["PROMPTS_DIR"] or PROJECT_ROOT / "prompts")
    app.config["PROMPTS_DIR"] = str(prompts_dir)
    app.config["AUDIO_DIR"] = str(app.config["AUDIO_DIR"] or PROJECT_ROOT / "audio")
    recheck = app.config["PROMPT_RECHECK_SECONDS"]
    app.extensions["ivr.prompts"] = Prompts(prompts_dir, recheck=recheck)
    app.extensions["ivr.menus"] = LRU()
    app.extensions["ivr.signatures"] = Signatures(
        app.config["TWILIO_AUTH_TOKEN"], app.config["TWILIO_WEBHOOK_SHARED_KEYS"]
    )

    database.init_app(app)
    if not app.config["TWILIO_ACCOUNT_SID"]:
        app.logger.warning(
            "TWILIO_ACCOUNT_SID is not set: recordings cannot be copied from Twilio for staff to "
            "play, and SMS alerts are off (fine for local use without a Twilio account)"
        )

    from . import audio, fallback, https, recordings, site, staff, voice  # noqa: F401

    https.init_app(app)
    app.register_blueprint(voice.bp)
    app.register_blueprint(site.bp)
    audio.init_app(app)
    staff.init_app(app)
    fallback.init_app(app)
    return app
