"""A last-resort journal of what callers left when the database could not take it.

Each entry is one JSON line, written to the log (which the platform keeps off the dyno, e.g. a
Heroku log drain) and, when JOURNAL_PATH is set, appended to that file too. `ivr callbacks replay`
reads either back and stores the entries idempotently once the database is healthy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from flask import current_app

MARK = "IVR-JOURNAL "
log = logging.getLogger("ivr.journal")


def write(entry: dict[str, Any]) -> None:
    line = json.dumps(entry, sort_keys=True, default=str)
    log.error("%s%s", MARK, line)
    path = current_app.config.get("JOURNAL_PATH")
    if path:
        try:
            with open(path, "a", encoding="utf-8") as journal:
                journal.write(line + "\n")
        except OSError:
            log.exception("could not append to journal file %s", path)


def read(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Yield journal entries from a journal file or from log output that contains them."""
    for line in lines:
        start = line.find(MARK)
        text = line[start + len(MARK) :] if start >= 0 else line
        text = text.strip()
        if not text.startswith("{"):
            continue
        try:
            entry = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("call_sid"):
            yield entry
