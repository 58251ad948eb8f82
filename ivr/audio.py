"""Rendered prompt audio (issue 5 fills this in)."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Nothing yet: `speak` falls back to <Say> when no audio library is installed."""
