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

from .prompts import LANGUAGES, Line, Prompts

PREFIX = "/audio/"
MANIFEST = "manifest.json"
UMASK = os.umask(0o22)
os.umask(UMASK)
HASHED_NAME = re.compile(r"/[a-z]{2}/[0-9a-f]{16}\.mp3$")


@dataclass(frozen=True)
class Spoken:
    """One thing the hotline can say: a manifest key ('welcome', 'menu_option:topics/1-x')."""

    key: str
    line: Line


@functools.lru_cache(maxsize=4096)  # called for every line of every webhook
def audio_hash(lang: str, tld: str, text: str) -> str:
    return hashlib.sha256(json.dumps([lang, tld, text]).encode("utf-8")).hexdigest()[:16]


def audio_file(lang: str, tld: str, text: str) -> str:
    """The file, relative to the audio folder, that holds `text` spoken with this accent."""
    return f"{lang}/{audio_hash(lang, tld, text)}.mp3"


def spoken(prompts: Prompts, lang: str) -> list[Spoken]:
    """Every line the call flow can speak in `lang`; raise PromptError if a prompt is broken.

    `menu_option` is a template, so it is expanded once per topic exactly as the menu fills it;
    a topic is heard as its body (its label is only heard inside `menu_option`).
    """
    topics = prompts.topics(lang)
    items: list[Spoken] = []
    for name in prompts.names(lang):
        if name.startswith("topics/"):
            continue
        if name == "menu_option":
            for topic in topics:
                line = prompts.line(lang, name, label=topic.label, key=topic.number)
                items.append(Spoken(f"{name}:{topic.name}", line))
        else:
            items.append(Spoken(name, prompts.line(lang, name)))
    items += [Spoken(t.name, Line(lang, t.body, t.name)) for t in topics]
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
        os.chmod(temp, 0o666 & ~UMASK)  # mkstemp makes 0600; give the usual mode
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(root / MANIFEST, text.encode("utf-8"))


class AudioLibrary:
    """The built audio, reloaded when the manifest changes; also the WSGI app that serves it."""

    def __init__(self, root: Path, tlds: dict[str, str]) -> None:
        self.root = Path(root)
        self.tlds = tlds
        self._stamp: tuple[int, int, int] | None | bool = False  # False: never loaded
        self._files: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self.static: WhiteNoise | None = None

    def wrap(self, wsgi_app: Any) -> WhiteNoise:
        """Serve `/audio/<lang>/<hash>.mp3` in front of `wsgi_app`, cached forever by Twilio."""
        library = self

        class AudioFiles(WhiteNoise):
            def __call__(self, environ, start_response):
                if environ.get("PATH_INFO", "").startswith(PREFIX):
                    library.refresh()
                return super().__call__(environ, start_response)

        # max_age=None: only hashed files (all of them) get a Cache-Control, "immutable".
        self.static = AudioFiles(wsgi_app, max_age=None, immutable_file_test=HASHED_NAME.pattern)
        self._stamp = False
        self.refresh()
        return self.static

    def refresh(self) -> None:
        """Reload the manifest when it changed: a stat per call, a read only after a build."""
        try:
            info = (self.root / MANIFEST).stat()
            stamp = (info.st_mtime_ns, info.st_ino, info.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        with self._lock:
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
            if self.static is not None:
                self.static.files = {
                    PREFIX + name: self.static.get_static_file(str(self.root / name), PREFIX + name)
                    for name in files
                }
            self._files, self._stamp = files, stamp

    def version(self) -> object:
        """Changes whenever the set of playable audio changes (callers key caches on it)."""
        self.refresh()
        return self._stamp

    def url(self, line: Line) -> str | None:
        """The URL of audio saying exactly `line.text`, or None when none was built for it.

        Relative, like every other URL in our TwiML: Twilio resolves it against the webhook's URL,
        so it needs no knowledge of the public host or scheme.
        """
        self.refresh()
        tld = self.tlds.get(line.lang)
        if tld is None:
            return None
        name = audio_file(line.lang, tld, line.text)
        if name not in self._files:
            return None
        root = request.script_root if has_request_context() else ""
        return f"{root}{PREFIX}{name}"


def tlds(config: dict[str, Any]) -> dict[str, str]:
    return {lang: config[f"GTTS_TLD_{lang.upper()}"] for lang in LANGUAGES}


def init_app(app: Flask) -> None:
    """Install the audio library (used by `speak`) and serve its files before the app."""
    library = AudioLibrary(Path(app.config["AUDIO_DIR"]), tlds(app.config))
    app.extensions["ivr.audio"] = library
    app.wsgi_app = library.wrap(app.wsgi_app)  # type: ignore[method-assign]
