"""The cookie and session policy: staff sessions travel over https only, and end in 12 hours.

Flask's defaults already hold these keys (Secure off, 31 days), so `setdefault` would never
apply: they are set unless a test's config chose its own. Secure cookies and https only outside
debug and tests; a staff login ends 12 hours after it was made (staff/auth.py), even if its
cookie was copied.
"""

from __future__ import annotations

from collections.abc import Collection

from flask import Flask


def init_app(app: Flask, chosen: Collection[str] = ()) -> None:
    """Set the policy on `app`, leaving alone the keys named in `chosen` (a test's own)."""
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    secure = not (app.debug or app.testing)
    for name, value in (
        ("SESSION_COOKIE_SECURE", secure),
        ("REMEMBER_COOKIE_SECURE", secure),
        ("REMEMBER_COOKIE_HTTPONLY", True),
        ("HTTPS_ONLY", secure),  # edge/https.py
        ("PERMANENT_SESSION_LIFETIME", 12 * 60 * 60),
    ):
        if name not in chosen:
            app.config[name] = value
