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
    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.path.startswith(NO_SESSION_PREFIXES):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if isinstance(session, NullSession):
            return
        super().save_session(app, session, response)
