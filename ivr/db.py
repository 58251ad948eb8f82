"""The database: one SQLAlchemy extension, a declarative base, and the URL the app uses.

Web processes are several and their disks are wiped on restart, so everything that must be kept
(requests, recordings, staff accounts, alerts) lives in the database named by DATABASE_URL. SQLite
in the instance folder is the default for trying the hotline on one machine.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Flask
from flask_sqlalchemy_lite import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

db = SQLAlchemy()

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Model(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def init_app(app: Flask) -> None:
    url = app.config["DATABASE_URL"]
    if not url:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{Path(app.instance_path) / 'hotline.sqlite3'}"
        app.config["DATABASE_URL"] = url
    engine_options = {"url": url}
    if url.startswith("postgresql"):
        engine_options["pool_pre_ping"] = True
    app.config.setdefault("SQLALCHEMY_ENGINES", {"default": engine_options})
    db.init_app(app)
