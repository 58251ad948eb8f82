"""How an e-mail leaves the app: one SMTP sender, built once at start-up, with a timeout.

`init_app` builds the `Sender` from SMTP_URL and SMTP_TIMEOUT and stores it in `app.extensions`;
alerts look it up with `sender()`. Every step of the SMTP conversation (connect, STARTTLS, login,
send) waits at most SMTP_TIMEOUT seconds, so a mail server that stops answering costs the job a
retry, never a worker thread. Texts go through the Twilio gateway (`gateway.py`).
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from flask import Flask, current_app

from ivr.settings import settings

EXTENSION = "ivr.messaging.email"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Sender:
    """Send through SMTP_URL: smtps:// is TLS from the start; smtp:// upgrades with STARTTLS
    when the server offers it, and never sends a password in the clear except to loopback."""

    def __init__(self, url: str, from_address: str, *, timeout: float) -> None:
        self.url = url
        self.from_address = from_address
        self.timeout = timeout

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def send(self, to: str, subject: str, body: str) -> None:
        url = urlsplit(self.url)
        if url.scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        email = EmailMessage()
        email["From"], email["To"], email["Subject"] = self.from_address, to, subject
        email.set_content(body)
        context = ssl.create_default_context()
        host = url.hostname or "localhost"
        if url.scheme == "smtps":
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                host, url.port or 465, timeout=self.timeout, context=context
            )
        else:
            server = smtplib.SMTP(host, url.port or 25, timeout=self.timeout)
        with server:
            secure = url.scheme == "smtps"
            if not secure:
                server.ehlo()
                if server.has_extn("starttls"):
                    server.starttls(context=context)
                    server.ehlo()
                    secure = True
            if url.username:
                if not secure and host not in LOOPBACK:
                    raise RuntimeError(f"{host} offers no TLS: refusing to send the SMTP password")
                server.login(unquote(url.username), unquote(url.password or ""))
            server.send_message(email)


def init_app(app: Flask) -> None:
    config = settings(app)
    app.extensions[EXTENSION] = Sender(
        config.smtp_url, config.alert_email_from, timeout=config.smtp_timeout
    )


def sender() -> Sender:
    return current_app.extensions[EXTENSION]


def send_email(to: str, subject: str, body: str) -> None:
    """Send one e-mail through the app's sender."""
    sender().send(to, subject, body)
