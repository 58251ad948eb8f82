"""How an alert leaves the app: SMS through Twilio's Messages API, e-mail through SMTP."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from twilio.rest import Client

from ivr.settings import settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def send_sms(to: str, body: str) -> None:
    config = settings()
    client = Client(config.twilio_account_sid, config.twilio_auth_token)
    client.messages.create(to=to, from_=config.alert_sms_from, body=body)


def send_email(to: str, subject: str, body: str) -> None:
    """Send through SMTP_URL: smtps:// is TLS from the start; smtp:// upgrades with STARTTLS
    when the server offers it, and never sends a password in the clear except to loopback."""
    config = settings()
    url = urlsplit(config.smtp_url)
    if url.scheme not in ("smtp", "smtps"):
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    email = EmailMessage()
    email["From"], email["To"], email["Subject"] = config.alert_email_from, to, subject
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
