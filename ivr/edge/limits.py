"""Refuse request bodies over MAX_CONTENT_LENGTH before anything reads them.

Twilio's webhooks are under 4 KiB and staff forms under 8 KiB, while parsing a 10 MiB form took a
worker 444 MiB and 3 seconds, before the signature or CSRF check could refuse it. Werkzeug
refuses a declared Content-Length over the limit without reading the body, but reads a chunked
body (no Content-Length) only up to the limit and then quietly stops, so a form cut short would be
parsed: here such a body is refused too.
"""

from __future__ import annotations

from collections.abc import Collection

from flask import Flask, abort, request

LIMIT = 64 * 1024


def init_app(app: Flask, chosen: Collection[str] = ()) -> None:
    """Cap request bodies at LIMIT (unless a test's config chose its own MAX_CONTENT_LENGTH)."""
    if "MAX_CONTENT_LENGTH" not in chosen:
        app.config["MAX_CONTENT_LENGTH"] = LIMIT
    app.before_request(refuse_large_bodies)


def refuse_large_bodies() -> None:
    """Answer 413 when the body is over the limit, before any view or check reads it."""
    length = request.content_length
    if length is not None:
        if request.max_content_length is not None and length > request.max_content_length:
            abort(413)
    elif "wsgi.input_terminated" in request.environ:  # chunked: the server ends the stream
        request.get_data(cache=True)  # at most the limit, kept for the form parser
        request.stream.read(1)  # RequestEntityTooLarge (413) if the body went on past it
