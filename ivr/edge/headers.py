"""Security headers on every response, in one place: the staff pages, the public site, the
webhooks' TwiML, errors and /healthz alike.

A page that forgot them could be framed (clickjacking a staff button), sniffed into another type,
or leak its URL in a Referer. The policy is strict because nothing here needs more: no inline
scripts or styles, no third-party content. What differs by path is caching only: staff pages and
recordings are never stored by a browser or a proxy, while the prompts' audio Twilio plays may be.
Written here rather than with flask-talisman: these few fixed headers are the whole need, and
https and HSTS are already https.py's.
"""

from __future__ import annotations

from flask import Flask, Response, request

HEADERS = {
    "Referrer-Policy": "same-origin",  # Flask-WTF checks the Referer on https POSTs
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
}
PRIVATE_PREFIXES = ("/staff",)  # pages and media only staff may see: never cached


def add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(PRIVATE_PREFIXES):
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_headers)
