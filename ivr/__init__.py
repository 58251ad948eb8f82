"""The J. Molina Law Firm hotline: a bilingual Twilio voice app built by `create_app`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from ivr import db as database
from ivr import process
from ivr import settings as settings_module
from ivr.calls.prompts import Prompts
from ivr.edge import cookies, limits, logmask, proxies
from ivr.edge.signatures import Signatures

PROJECT_ROOT = settings_module.PROJECT_ROOT


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, or from `test_config` (strings parsed the same way).

    Settings are parsed here, once, so a bad one stops the process at start-up, not mid-call.
    This function only composes: each part sets itself up in its own module's `init_app`.
    """
    app = Flask(__name__, instance_relative_config=True)
    config = settings_module.init_app(app, test_config)
    process.init_app(app)
    logmask.install()  # phone numbers and A-numbers never reach a log line (edge/logmask.py)
    cookies.init_app(app, chosen=test_config or {})
    proxies.init_app(app)

    app.extensions["ivr.calls.prompts"] = Prompts(Path(config.prompts_dir))
    app.extensions["ivr.edge.signatures"] = Signatures(
        config.twilio_auth_token, config.twilio_webhook_shared_keys
    )

    database.init_app(app)
    if not config.twilio_account_sid:
        app.logger.warning(
            "TWILIO_ACCOUNT_SID is not set: recordings cannot be copied from Twilio for staff to "
            "play, and SMS alerts are off (fine for local use without a Twilio account)"
        )

    from ivr import site, staff, voice
    from ivr.background import jobs
    from ivr.calls import audio
    from ivr.edge import headers, https
    from ivr.messaging import email, gateway
    from ivr.reports import tasks as reports
    from ivr.requests import alerts, erasure, fallback, recordings, retention, sms
    from ivr.requests.service import callers, calling

    limits.init_app(app, chosen=test_config or {})
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
            *sms.CAP_NOTICE.values(),
            *alerts.DIGESTS.values(),
            calling.STAFF_CALL,
            recordings.COPY_RECORDING,
            recordings.COPY_MESSAGE,
            recordings.DELETE_RECORDING,
            erasure.REDACT_MESSAGE,
            retention.RETENTION,
            reports.SETTLE,
            reports.SUMMARY,
        ),
        # Settling call events hourly, the reports' summary weekly (their keys hold hour, week).
        every_minute=(recordings.queue_missing, retention.queue_daily, reports.queue),
        at_start=(fallback.init_app,),
    )
    # The fallback journal replays through the request service (requests/service/callers.py).
    callers.init_app(app)
    return app
