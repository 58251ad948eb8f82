"""How an alert leaves the app: SMS through Twilio's Messages API, e-mail through SMTP."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from flask import current_app
from twilio.rest import Client

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def send_sms(to: str, body: str) -> None:
    config = current_app.config
    client = Client(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"])
    client.messages.create(to=to, from_=config["ALERT_SMS_FROM"], body=body)


def send_email(to: str, subject: str, body: str) -> None:
    """Send through SMTP_URL: smtps:// is TLS from the start; smtp:// upgrades with STARTTLS
    when the server offers it, and never sends a password in the clear except to loopback."""
    config = current_app.config
    url = urlsplit(config["SMTP_URL"])
    if url.scheme not in ("smtp", "smtps"):
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    email = EmailMessage()
    email["From"], email["To"], email["Subject"] = config["ALERT_EMAIL_FROM"], to, subject
    email.set_content(body)
    context = ssl.create_default_context()
    host = url.hostname or "localhost"
    if url.scheme == "smtps":
        server: smtplib.SMTP = smtplib.SMTP_SSL(host, url.port or 465, timeout=20, context=context)
    else:
        server = smtplib.SMTP(host, url.port or 25, timeout=20)
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
