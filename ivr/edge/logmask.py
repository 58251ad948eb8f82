"""No personal data in the logs: every line has phone numbers cut to their last two digits and
A-numbers (and anything that could be one) removed, whoever wrote it.

Logs leave the app: Heroku sends them to its log drain, kept outside retention and outside the
audit log's reach, so "we delete a family's number after RETENTION_DAYS" would not be true if a
line carried it. Code here avoids logging numbers in the first place; this is the net under it,
for a line someone adds later, a library's message, a traceback, or gunicorn's access log (a
search in a staff URL). It is a log record factory rather than a handler's filter, so it applies
to every handler, including ones added after start-up (gunicorn's, pytest's).

Masked: anything that starts with `+` and a digit and holds 7 or more digits (E.164, spaced or
not), a US number as written (`(312) 555-0177`, `312-555-0177`), an A-number as written
(`087-654-321`), and any run of 7 or more digits standing alone. Runs of 8 or 9 digits are the
shape of an A-number and are replaced whole; other numbers keep their last two digits, enough to
tell two apart in a log. Digits inside a word (a CallSid's hex, a Fernet token) are left alone.
"""

from __future__ import annotations

import logging
import re

_EDGE_BEFORE = r"(?<![\w+/=])"
_EDGE_AFTER = r"(?![\w/=])"
PATTERN = re.compile(
    _EDGE_BEFORE
    + r"(?:"
    + r"\+\d[\d\s().-]{5,}\d"  # +1 312 555 0177, +13125550177
    + r"|\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}"  # (312) 555-0177, 312.555.0177
    + r"|\d{3}-\d{3}-\d{3}"  # an A-number as the dashboard writes it
    + r"|\d{7,}"  # any other long run of digits
    + r")"
    + _EDGE_AFTER
)


def _mask(match: re.Match[str]) -> str:
    text = match[0]
    digits = re.sub(r"\D", "", text)
    if len(digits) < 7:
        return text
    if not text.startswith("+") and len(digits) in (8, 9):
        return "[A-number?]"
    return "…" + digits[-2:]


def mask(text: str) -> str:
    return PATTERN.sub(_mask, text)


_factory = logging.getLogRecordFactory()


def _masked_record(*args, **kwargs) -> logging.LogRecord:
    record = _factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: logging reports it when a handler formats it
        return record
    masked = mask(message)
    if masked != message or record.args:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = mask(record.stack_info)
    return record


_masked_record.ivr_masks = True  # type: ignore[attr-defined]


def install() -> None:
    """Idempotent: create_app may run many times in one process (tests, the CLI)."""
    if not getattr(logging.getLogRecordFactory(), "ivr_masks", False):
        logging.setLogRecordFactory(_masked_record)
