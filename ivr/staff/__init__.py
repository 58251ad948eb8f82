"""The staff side: log in, hear each callback request, mark it handled, and be alerted to new ones.

Every URL under /staff goes through one blueprint whose `before_request` demands a login, so a
view added later cannot forget to: the recordings hold names, detention places and A-numbers.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import NotFound

from ivr.background import health
from ivr.requests import alerts, retention
from ivr.staff import (  # noqa: F401
    admin,
    auth,
    callstate,
    dashboard,
    display,
    missed,
    profile,
    reports,
    roles,
    twofactor,
)
from ivr.staff.auth import login_manager

PREFIX = "/staff"
bp = Blueprint("staff", __name__, url_prefix=PREFIX)
csrf = CSRFProtect()


@bp.before_request
def require_csrf_token() -> None:
    """Every staff form post carries the session's CSRF token (Flask-WTF's own check).

    Checked here rather than app-wide: Twilio's webhooks are signed by Twilio, not by a form, and
    an app-wide hook would run on every step of every call only to find them exempt.
    """
    csrf.protect()


@bp.before_request
def require_login() -> Response | None:
    if request.endpoint in auth.PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return login_manager.unauthorized()


bp.before_request(roles.check)  # after require_login: the right account for this page
bp.before_request(twofactor.enforce)
bp.after_request(admin.audit_views)
bp.after_request(callstate.after_htmx)  # a card's htmx request never swaps in the login page


@bp.context_processor
def privacy_helpers() -> dict:
    """For templates: when a request's personal data goes, and whether it is gone."""
    return {"purge_date": retention.purge_date, "is_erased": retention.is_erased}


@bp.context_processor
def background_delay() -> dict:
    """For base.html's banner: since when alerts and call-backs are delayed (office time), while
    the worker is stalled. Checked on each staff page, so staff see it without asking."""
    if not current_user.is_authenticated:
        return {}
    try:
        found = health.check()
    except sa.exc.SQLAlchemyError as exc:  # the page itself says what the database allows
        logging.getLogger(__name__).debug("background check skipped: %s", exc)
        return {}
    since = found.delayed_since
    return {"delayed_since": display.clock_time(since) if since is not None else None}


bp.register_blueprint(auth.bp)
bp.register_blueprint(dashboard.bp)
bp.register_blueprint(admin.bp)
bp.register_blueprint(twofactor.bp)
bp.register_blueprint(profile.bp)
bp.register_blueprint(missed.bp)
bp.register_blueprint(reports.bp)


def not_found(error: NotFound):
    """A staff page that does not exist gets a page with a way back; a webhook keeps Flask's."""
    if not request.path.startswith(PREFIX + "/"):
        return error
    # Its security headers are added app-wide, as for every response (edge/headers.py).
    return Response(render_template("staff/404.html"), status=404, mimetype="text/html")


def init_app(app: Flask) -> None:
    """Add login, CSRF protection, the /staff pages and alerts to `app`."""
    # A form left open all day must still post: bind CSRF tokens to the session, not to an hour.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # Flask-WTF's documented switch for checking only where `protect()` is called: the staff
    # blueprint, before any of its views (see require_csrf_token).
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    login_manager.init_app(app)
    app.register_blueprint(bp)
    app.register_error_handler(NotFound, not_found)
    alerts.init_app(app)
    admin.init_app(app)
