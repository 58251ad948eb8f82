"""What callers gave while the database could not take it: kept on disk, applied when it is back.

A database fault must not shorten a call, so a step whose write fails is kept here and the call
goes on. Each kept step is one compact JSON line (with the reason, never a traceback):
- appended and fsynced to FALLBACK_PATH (default: the instance folder), shared by the processes
  of one machine, so it survives a killed process;
- and logged with the mark `IVR-JOURNAL`, so it also reaches the platform's log drain, from which
  `ivr callbacks replay` recovers entries of a machine that is gone. The drain is outside
  retention and erase, so the log's copy is a Fernet token (DATA_KEYS, edge/keys.py), never the
  JSON: numbers, A-numbers and recording URLs cannot be read from it without the key, and
  `ivr callbacks replay` decrypts it with the same settings.

One thread per process (`Drainer`, started with the first kept entry or at start-up when the file
is not empty) retries every FALLBACK_RETRY_SECONDS. While the database stays down it alerts staff
directly with what each finished caller gave, so a person knows before any replay; once the
database answers it applies every entry (keyed by CallSid, so twice is the same as once) and
empties the file, under a file lock so that only one process applies at a time.

How entries are stored and how staff are alerted directly are the request service's business:
it hands both in at start-up (`init_app`, called by `service/callers.init_app`), so this module
imports nothing above it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from ivr import clock
from ivr.edge import keys
from ivr.settings import settings

MARK = "IVR-JOURNAL "
TOKEN = "gAAAA"  # how every Fernet token starts (version byte and time, base64)
log = logging.getLogger("ivr.requests.fallback")
Entries = list[dict[str, Any]]


@dataclass(frozen=True)
class Hooks:
    """What the fallback needs from the request service, given at start-up."""

    # Store the entries; (stored, failed, refused); raise SQLAlchemyError if the database fails.
    replay: Callable[[Entries], tuple[int, int, Entries]]
    # Alert staff from the entries while the database is down; return marks (lines) to keep.
    alert_directly: Callable[[Entries], list[str]]
    database_answers: Callable[[], bool]


def hooks(app: Flask) -> Hooks:
    found = app.extensions.get("ivr.requests.fallback.hooks")
    if found is None:
        raise RuntimeError("fallback.init_app was not called (service/callers.init_app does)")
    return found


def path(app: Flask) -> Path:
    return Path(settings(app).fallback_path or Path(app.instance_path) / "fallback.jsonl")


def keep(entry: dict[str, Any], error: BaseException | None = None) -> None:
    """Keep one step that the database refused: one log line and one line in the file."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    entry = {"at": clock.now().isoformat(timespec="seconds"), **entry}
    if error is not None:
        entry["error"] = (
            f"{type(error).__name__}: {str(error).strip().splitlines()[0][:160]}"
            if str(error).strip()
            else type(error).__name__
        )
    line = json.dumps(entry, sort_keys=True, default=str, separators=(",", ":"))
    log.warning("%s%s", MARK, keys.encrypt(line))
    try:
        append(path(app), [line])
    except OSError as exc:  # the log line above is then the only copy
        log.error("could not append to the fallback file %s: %s", path(app), exc)
    drainer(app).wake()


def append(file: Path, lines: list[str]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as out:
        fcntl.flock(out, fcntl.LOCK_EX)
        out.write("".join(line + "\n" for line in lines))
        out.flush()
        os.fsync(out.fileno())


def read(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Yield entries from the fallback file or from log output that contains them."""
    for line in lines:
        start = line.find(MARK)
        text = line[start + len(MARK) :] if start >= 0 else line
        text = text.strip()
        if start >= 0 and text.startswith(TOKEN):
            try:
                text = keys.decrypt(text.split()[0])
            except keys.InvalidToken:
                log.warning("a journal line in the log does not open with DATA_KEYS: skipped")
                continue
        if not text.startswith("{"):
            continue
        try:
            entry = json.loads(text)
        except json.JSONDecodeError:
            continue  # a line cut short in a log dump
        if isinstance(entry, dict) and entry.get("call_sid"):
            yield entry


def pending(app: Flask) -> bool:
    file = path(app)
    return file.exists() and file.stat().st_size > 0


def apply(app: Flask) -> tuple[int, int] | None:
    """Store every kept entry and take them out of the file; return (stored, failed), or None
    when the database is still down or another process is applying. While the database is down,
    staff are alerted directly, once per call, with what callers gave.

    Webhooks append to the file while this runs: the file's own lock is held only to read and to
    cut what was applied, never during the database work or an alert, so no caller waits on it.
    A second lock file lets one process at a time apply.
    """
    given = hooks(app)
    file = path(app)
    if not pending(app):
        return 0, 0
    with open(file.with_suffix(".lock"), "a") as applying:
        try:
            fcntl.flock(applying, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # another process of this machine is applying
        with open(file, encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            text = handle.read()
        entries = list(read(text.splitlines()))
        with app.app_context():
            if not given.database_answers():
                marks = given.alert_directly(entries)
                if marks:  # so that neither a retry nor the replay alerts these calls again
                    append(file, marks)
                return None
            stored, failed, kept = given.replay(entries)
        with open(file, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            rest = handle.read()[len(text) :]  # appended while we applied: kept for next time
            handle.seek(0)
            handle.truncate()
            # Entries the database refused for a reason of their own stay for a person.
            handle.write("".join(json.dumps(e, sort_keys=True) + "\n" for e in kept) + rest)
            handle.flush()
            os.fsync(handle.fileno())
    log.info("fallback applied: %d entries stored, %d failed", stored, failed)
    return stored, failed


def forget(app: Flask, call_sids: set[str]) -> int:
    """Take every kept entry of these calls out of this machine's file (an erased request's):
    its personal data must not wait there to be applied. Returns how many lines went. Holds the
    applying lock, so an apply in progress finishes first (its cut counts characters)."""
    file = path(app)
    if not call_sids or not pending(app):
        return 0
    with open(file.with_suffix(".lock"), "a") as applying:
        fcntl.flock(applying, fcntl.LOCK_EX)
        with open(file, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            lines = handle.read().splitlines()
            kept = [line for line in lines if _call_sid(line) not in call_sids]
            handle.seek(0)
            handle.truncate()
            handle.write("".join(line + "\n" for line in kept))
            handle.flush()
            os.fsync(handle.fileno())
    return len(lines) - len(kept)


def _call_sid(line: str) -> str | None:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    return entry.get("call_sid") if isinstance(entry, dict) else None


class Drainer:
    """One thread per process that applies the fallback file once the database is back."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.event = threading.Event()
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.lock = threading.Lock()
        self.stopped = False

    def wake(self) -> None:
        with self.lock:
            if self.pid != os.getpid() or self.thread is None or not self.thread.is_alive():
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._run, name="ivr-fallback", daemon=True)
                self.thread.start()
        self.event.set()

    def _run(self) -> None:
        every = settings(self.app).fallback_retry_seconds
        while not self.stopped:
            self.event.wait(every)
            self.event.clear()
            if self.stopped:
                return
            try:
                if apply(self.app) is None:
                    continue  # the database is still down: keep the file, try again
            except sa.exc.SQLAlchemyError as exc:  # down again mid-way: the file is intact
                log.info("fallback kept for the next try: %s", str(exc).splitlines()[0][:160])
                continue
            except Exception:  # never let the thread die with entries waiting
                log.exception("fallback apply failed; trying again")
                continue
            if not pending(self.app):
                with self.lock:  # a new entry restarts the thread through wake()
                    if not pending(self.app):
                        self.thread = None
                        return

    def stop(self, timeout: float = 10) -> None:
        """End the thread (tests; a process that exits simply leaves the file for later)."""
        self.stopped = True
        self.event.set()
        if self.thread is not None:
            self.thread.join(timeout)


def drainer(app: Flask) -> Drainer:
    found = app.extensions.get("ivr.requests.fallback")
    if found is None:
        found = app.extensions["ivr.requests.fallback"] = Drainer(app)
    return found


def init_app(app: Flask, given: Hooks | None = None) -> None:
    """Take the service's replay and direct alerts (at start-up: `service/callers.init_app`);
    resume a file left by a process that stopped before the database came back."""
    if given is not None:
        app.extensions["ivr.requests.fallback.hooks"] = given
    if pending(app):
        drainer(app).wake()
