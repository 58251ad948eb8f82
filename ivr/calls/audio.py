"""Rendered prompt audio: what can be spoken, where its audio lives, and serving it to Twilio.

A file is named after a hash of exactly what it says (language, gTTS accent, text), so audio can
never be played for text it does not match: `AudioLibrary.url` hashes the line's current text and
answers None (speak with `<Say>`) unless that file was built. The same hashed names let Twilio cache
each file forever. `spoken` is the one list of "what the hotline can say", shared by the build,
`ivr audio build --check` and the runtime.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, has_request_context, request
from whitenoise import WhiteNoise

from ivr.calls.prompts import LANGUAGES, Line, Prompts
from ivr.edge.headers import HEADERS
from ivr.settings import Settings, settings

PREFIX = "/audio/"


def security_headers(headers: Any, _path: str, _url: str) -> None:
    """The app-wide security headers (edge/headers.py) on the files WhiteNoise serves before
    Flask sees the request."""
    for name, value in HEADERS.items():
        headers[name] = value


MANIFEST = "manifest.json"
FILE_MODE = 0o644  # readable by the web server whatever the umask of whoever ran the build
HASHED_NAME = re.compile(r"/[a-z]{2}/[0-9a-f]{16}\.mp3$")


@dataclass(frozen=True)
class Spoken:
    """One thing the hotline can say: a manifest key ('welcome', 'menu_option:topics/1-x')."""

    key: str
    line: Line


@functools.lru_cache(maxsize=4096)  # called for every line of every webhook
def audio_hash(lang: str, tld: str, text: str, slow: bool = False) -> str:
    # The slow rendering hashes differently; the normal one keeps the hash it always had.
    what = [lang, tld, text, "slow"] if slow else [lang, tld, text]
    return hashlib.sha256(json.dumps(what).encode("utf-8")).hexdigest()[:16]


def audio_file(lang: str, tld: str, text: str, slow: bool = False) -> str:
    """The file, relative to the audio folder, that holds `text` spoken with this accent (and
    more slowly, for `slow`)."""
    return f"{lang}/{audio_hash(lang, tld, text, slow)}.mp3"


def spoken(prompts: Prompts, lang: str) -> list[Spoken]:
    """Every line the call flow can speak in `lang`; raise PromptError if a prompt is broken.

    `menu_option` is a template, so it is expanded once per topic exactly as the menu fills it;
    a topic is heard as its body (its label is only heard inside `menu_option`). The other
    templates (the office hours, filled from the settings at call time) and the `words/` they
    are filled with are never heard as they are written, so they have no audio: `<Say>`.
    """
    topics = prompts.topics(lang)
    items: list[Spoken] = []
    for name in prompts.names(lang):
        if name.startswith(("topics/", "words/", "sms/")):
            continue  # topics are added below; words are filled in at call time; texts are sent
        if name == "menu_option":
            for topic in topics:
                line = prompts.line(lang, name, label=topic.label, key=topic.number)
                items.append(Spoken(f"{name}:{topic.name}", line))
        elif "{" not in (line := prompts.line(lang, name)).text:
            items.append(Spoken(name, line))
    items += [Spoken(t.name, Line(lang, t.body, t.name)) for t in topics]
    # Each topic once more, slowly (gTTS `slow=True`), for the caller who presses 7.
    items += [Spoken(f"slow:{t.name}", Line(lang, t.body, t.name, slow=True)) for t in topics]
    # A topic ending "Contact us today." is said "Contact us." when the office does not open
    # again today (Prompts.closed_ending): that version too, at both speeds.
    for t in topics:
        if (closed := prompts.closed_ending(lang, t.body)) is not None:
            items.append(Spoken(f"closed:{t.name}", Line(lang, closed, t.name)))
            items.append(Spoken(f"slow:closed:{t.name}", Line(lang, closed, t.name, slow=True)))
    return items


def read_manifest(root: Path) -> dict[str, dict[str, dict[str, str]]]:
    """The manifest: language → key → {"hash", "file"}; empty when none was built yet."""
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    return {lang: dict(data.get(lang, {})) for lang in LANGUAGES}


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
        os.chmod(temp, FILE_MODE)  # mkstemp makes 0600
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(root / MANIFEST, text.encode("utf-8"))


class AudioLibrary:
    """The built audio, reloaded when the manifest changes; also the WSGI app that serves it.

    Only files listed in the manifest are served (never a half-written `.tmp-` file, the manifest
    itself, or audio left over from an old build). The serving is a plain WhiteNoise instance built
    with its documented `add_files`; when the manifest changes a new one is built and swapped in
    with one assignment, so a request sees either the old set of files or the new one.
    """

    def __init__(self, root: Path, tlds: dict[str, str]) -> None:
        self.root = Path(root)
        self.tlds = tlds
        self._stamp: tuple[int, int, int] | None | bool = False  # False: never loaded
        self._files: frozenset[str] = frozenset()  # "es/<hash>.mp3", listed and on disk
        self._static: tuple[frozenset[str], WhiteNoise] | None = None  # swapped as one
        self._app: Any = None
        self._lock = threading.Lock()

    def wrap(self, wsgi_app: Any) -> Any:
        """Serve `/audio/<lang>/<hash>.mp3` in front of `wsgi_app`, cached forever by Twilio."""
        self._app = wsgi_app
        self._stamp = False
        self.refresh()
        return self

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX):
            self.refresh()
            serving = self._static  # read once: a refresh may swap it meanwhile
            if serving is not None and path[len(PREFIX) :] in serving[0]:
                return serving[1](environ, start_response)
        return self._app(environ, start_response)

    def whitenoise(self) -> WhiteNoise:
        """A WhiteNoise that knows every file now in the audio folder (one directory scan)."""
        # max_age=None: only hashed files (all of them) get a Cache-Control, "immutable".
        static = WhiteNoise(
            self._app,
            max_age=None,
            immutable_file_test=HASHED_NAME.pattern,
            add_headers_function=security_headers,
        )
        if self.root.is_dir():
            static.add_files(str(self.root), prefix=PREFIX)
        return static

    def refresh(self) -> None:
        """Reload the manifest when it changed: a stat on every use, a read only after a build."""
        try:
            info = (self.root / MANIFEST).stat()
            stamp = (info.st_mtime_ns, info.st_ino, info.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return  # another thread reloaded it meanwhile
            try:
                manifest = read_manifest(self.root)
            except (OSError, ValueError):
                manifest = {}  # unreadable: speak with <Say> rather than fail the call
            files = frozenset(
                entry["file"]
                for entries in manifest.values()
                for entry in entries.values()
                if (self.root / entry["file"]).is_file()
            )
            if self._app is not None:
                try:
                    self._static = (files, self.whitenoise())
                except OSError:
                    return  # a build's temporary file vanished mid-scan: try again next request
            self._files, self._stamp = files, stamp

    def url(self, line: Line) -> str | None:
        """The URL of audio saying exactly `line.text`, or None when none was built for it.

        Relative, like every other URL in our TwiML: Twilio resolves it against the webhook's URL,
        so it needs no knowledge of the public host or scheme.
        """
        self.refresh()
        tld = self.tlds.get(line.lang)
        if tld is None:
            return None
        name = audio_file(line.lang, tld, line.text, line.slow)
        if name not in self._files:
            return None
        root = request.script_root if has_request_context() else ""
        return f"{root}{PREFIX}{name}"


def tlds(config: Settings) -> dict[str, str]:
    return {lang: config.gtts_tld(lang) for lang in LANGUAGES}


def init_app(app: Flask) -> None:
    """Install the audio library (used by `speak`) and serve its files before the app."""
    library = AudioLibrary(Path(settings(app).audio_dir), tlds(settings(app)))
    app.extensions["ivr.calls.audio"] = library
    app.wsgi_app = library.wrap(app.wsgi_app)  # type: ignore[method-assign]
