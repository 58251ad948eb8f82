"""https only, outside debug and tests: plain http is redirected, and browsers are told to stay.

Staff passwords, session cookies and callers' details must never cross the network in clear. The
scheme is the one the request arrived with; behind Heroku's router, which terminates TLS, that is
the router's `X-Forwarded-Proto` as Werkzeug's `ProxyFix` applies it (see `proxies.py`).

The redirect goes to PUBLIC_URL, never to the request's `Host` header: anyone can send any Host,
and a redirect built from it would send a staff member's browser wherever they chose. Without
PUBLIC_URL a plain http request gets a 400 that says so (set it in production).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from ivr.settings import settings

# A year, the usual minimum for browsers' preload lists; no includeSubDomains, since the firm's
# other hosts under the same domain are not ours to promise.
HSTS = "max-age=31536000"


def init_app(app: Flask) -> None:
    app.before_request(redirect_plain_http)
    app.after_request(strict_transport_security)


def redirect_plain_http() -> BaseResponse | None:
    # Read per request: `ivr call` turns it off for its in-process calls, which cross no network.
    if request.is_secure or not current_app.config["HTTPS_ONLY"]:
        return None
    public = settings().public_url
    if not public.startswith("https://"):
        return Response(
            "This site answers over https only (PUBLIC_URL names its https address).",
            status=400,
            mimetype="text/plain",
        )
    # Twilio follows 301, 302, 303 and 307, not 308; 307 repeats a webhook's POST with its body.
    code = 301 if request.method in ("GET", "HEAD") else 307
    origin = "https://" + urlsplit(public).netloc
    return redirect(origin + request.full_path.rstrip("?"), code=code)


def strict_transport_security(response: Response) -> Response:
    # Browsers ignore the header on plain http (RFC 6797), so it goes on https answers only.
    if request.is_secure and current_app.config["HTTPS_ONLY"]:
        response.headers["Strict-Transport-Security"] = HSTS
    return response
