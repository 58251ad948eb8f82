"""The caller's journeys, one blueprint each, all under `/voice` and all signed by Twilio.

In call order: `welcome` (greeting, language), `topics` (menu and the firm's explanations),
`connect` (Call Now, the firm's whisper), `callback` (the recorded message), `details` (the
number to call back, the A-number), `closing` (urgency, the reference read and offered by text,
goodbye) and `again` (a caller who calls again while their request is open); `staffcall` is a
staff call-back through the hotline (the staff phone's leg, then the family's); `errors` answers
what goes wrong. Endpoint
`voice.<module>.<view>` lives in `ivr/voice/<module>.py`.

The parent blueprint checks `X-Twilio-Signature` before any child runs, and turns an unexpected
error into TwiML (an apology, then the firm) so no caller hears "an application error has occurred".
"""

from __future__ import annotations

from flask import Blueprint

from ivr.voice import again, callback, closing, connect, details, staffcall, topics, welcome
from ivr.voice.common import require_twilio_signature
from ivr.voice.errors import answer_errors
from ivr.voice.menus import Menu

# Every menu a caller hears, in call order: `ivr prompts check` reads their keys and prompts.
MENUS: tuple[Menu, ...] = (
    welcome.LANGUAGE,
    topics.FIRST,
    topics.MAIN,
    topics.AFTER_TOPIC,
    topics.HELP,
    connect.OFFER,
    details.NUMBER,
    details.READBACK,
    closing.URGENCY,
    closing.AFTER_REFERENCE,
)

bp = Blueprint("voice", __name__, url_prefix="/voice")
bp.before_request(require_twilio_signature)
bp.register_error_handler(Exception, answer_errors)
for child in (
    welcome.bp,
    topics.bp,
    connect.bp,
    callback.bp,
    details.bp,
    closing.bp,
    again.bp,
    staffcall.bp,
):
    bp.register_blueprint(child)
