"""The staff side (issue 4 fills this in)."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Nothing yet."""
