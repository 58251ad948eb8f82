"""Sessions for the staff pages only.

Twilio's webhooks and audio fetches carry no cookies, so they get Flask's null session: no cookie is
decoded or signed and no `Vary: Cookie` is added on the path every caller waits on. Staff pages keep
Flask's signed-cookie sessions.
"""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import NullSession, SecureCookieSessionInterface, SessionMixin

NO_SESSION_PREFIXES = ("/voice", "/audio/")


class StaffSessions(SecureCookieSessionInterface):
    def __init__(self) -> None:
        # A NullSession refuses every write, so one instance can serve every webhook.
        self._null = NullSession()

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.environ.get("PATH_INFO", "").startswith(NO_SESSION_PREFIXES):
            return self._null
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if isinstance(session, NullSession):
            return
        super().save_session(app, session, response)
