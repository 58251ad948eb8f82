"""Trust exactly FORWARDED_PROXIES proxies in front of the app, and no client's own headers.

Behind a proxy that terminates TLS (Heroku's router: FORWARDED_PROXIES=1), the client address,
scheme and port are taken from the values that many proxies appended, so the URL checked against
X-Twilio-Signature is the https URL Twilio signed and login rate limits see the real client.
Without a proxy anyone could send these headers: they are ignored. The host is never taken from
X-Forwarded-Host (Heroku passes a client's through; see PUBLIC_URL).
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from ivr.settings import settings


def init_app(app: Flask) -> None:
    config = settings(app)
    proxies = config.forwarded_proxies
    if proxies:
        # Flask's documented way to add WSGI middleware; mypy sees wsgi_app only as a method.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=0, x_port=proxies
        )
    if not config.public_url and not (app.debug or app.testing):
        app.logger.warning(
            "PUBLIC_URL is not set: webhook signatures are checked against the Host header, so "
            "a signature Twilio made for another copy of this app would be accepted here"
        )
