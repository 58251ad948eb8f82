"""The caller's journeys, one blueprint each, all under `/voice` and all signed by Twilio.

The parent blueprint checks `X-Twilio-Signature` before any child runs, and turns an unexpected
error into TwiML (an apology, then the firm) so no caller hears "an application error has occurred".
"""

from __future__ import annotations

from flask import Blueprint

# `details` adds the later callback steps to callback.bp: imported for its routes.
from .. import sms
from . import again, callback, closing, connect, details, topics, welcome  # noqa: F401
from .common import require_twilio_signature
from .errors import answer_errors

bp = Blueprint("voice", __name__, url_prefix="/voice")
bp.before_request(require_twilio_signature)
bp.register_error_handler(Exception, answer_errors)
for child in (welcome.bp, topics.bp, connect.bp, callback.bp, closing.bp, again.bp, sms.bp):
    bp.register_blueprint(child)
