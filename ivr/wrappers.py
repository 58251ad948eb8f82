"""The app and request classes: Flask's, with quicker paths for what every webhook does.

Every step of every call is a Twilio webhook: a few hundred bytes of urlencoded fields, signed over
the URL and those fields. Werkzeug's general form parser (stream wrappers, size checks, multipart
dispatch) and its IRI-building `request.url` cost more than the signature itself on that path, so
this class reads such a body in one call and builds the URL from the WSGI environ. Anything else
(chunked, large or non-form bodies) goes to Werkzeug unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote_plus

from flask import Flask, Request
from werkzeug import urls as _registers_url_quote  # noqa: F401  (KEEP_ESCAPES)
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import RequestEntityTooLarge

FORM = "application/x-www-form-urlencoded"
# Twilio's voice webhooks are well under 4 KiB; a bigger body takes Werkzeug's own path.
QUICK_LIMIT = 64 * 1024
PATH_SAFE = "!$&'()*+,/:;=@%"
QUERY_SAFE = "!$&'()*+,/:;=?@%"
DEFAULT_PORTS = {"http": ":80", "https": ":443"}
KEEP_ESCAPES = "werkzeug.url_quote"  # the codec error handler Werkzeug registers and parses with
# A host name, IPv4 or [IPv6] address, with an optional port: nothing that could change the URL.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?").fullmatch


def parse_form(body: str) -> list[tuple[str, str]]:
    """The pairs Werkzeug's form parser gives for a UTF-8 body: `parse_qsl(body,
    keep_blank_values=True, errors="werkzeug.url_quote")`, where an invalid escape such as `%E2`
    is kept as written.

    Unquoting is skipped for names and values with no `%` or `+` (most of Twilio's fields, such
    as `CallSid=CA…` or `Digits=2`); it is most of parse_qsl's cost. tests/test_wrappers.py checks
    this agrees with Werkzeug on random bodies.
    """
    items = []
    for pair in body.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = _unquote(name)
        if "%" in value or "+" in value:
            value = _unquote(value)
        items.append((name, value))
    return items


_UNQUOTED: dict[str, str] = {}


def _unquote(text: str) -> str:
    """unquote_plus, remembered: the escaped values of a call repeat on every step (its From, To,
    Caller and Called numbers: `%2B1312…`), and the firm's own number on every call."""
    try:
        return _UNQUOTED[text]
    except KeyError:
        if len(_UNQUOTED) >= 4096:
            _UNQUOTED.clear()
        plain = _UNQUOTED[text] = unquote_plus(text, errors=KEEP_ESCAPES)
        return plain


class Fields(ImmutableMultiDict):
    """Form and query fields, with the `getall` that twilio-python's RequestValidator tries first
    (it falls back to `getlist` only after an AttributeError, once per field per request).

    A MultiDict is a dict of lists underneath: `getall` is that dict's own lookup, done in C. The
    validator only reads the list, and the multidict is immutable.
    """

    getall = dict.__getitem__


NO_FILES = Fields()  # immutable, so one empty instance serves every urlencoded request


class HotlineRequest(Request):
    parameter_storage_class = Fields

    def _load_form_data(self) -> None:
        if "form" in self.__dict__:
            return
        environ = self.environ
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if mimetype != FORM or not 0 <= length <= QUICK_LIMIT:
            super()._load_form_data()
            return
        limit = self.max_content_length
        if limit is not None and length > limit:
            raise RequestEntityTooLarge()
        body = environ["wsgi.input"].read(length) if length else b""
        # A body that is not UTF-8 (Twilio's always is) has its bad bytes replaced, so it fails
        # the signature check with a 403; Werkzeug's own parser would raise, and a caller-facing
        # error answer would follow.
        items = parse_form(body.decode(errors="replace"))
        self._cached_data = body  # get_data() still returns the body
        self._form_pairs = items
        d = self.__dict__
        d["form"], d["files"] = self.parameter_storage_class(items), NO_FILES

    def form_pairs(self) -> list[tuple[str, str]]:
        """The form's (name, value) pairs in the order sent (for the signature check)."""
        self._load_form_data()
        pairs = getattr(self, "_form_pairs", None)
        return pairs if pairs is not None else list(self.form.items(multi=True))

    def sent_url(self) -> str | None:
        """The URL as the client sent it (after ProxyFix), percent-encoded as on the wire, or None
        when the Host header is not a plain host name (then only `request.url` is checked).

        `request.url` is the same URL as an IRI, built through several cached properties. Like
        Werkzeug's, the port is left out when it is the scheme's default: behind Heroku's router
        ProxyFix makes the host `name:443` (from X-Forwarded-Port), and Twilio signed `https://name/`.
        """
        environ = self.environ
        scheme = environ["wsgi.url_scheme"]
        host = environ.get("HTTP_HOST", "")
        if not _PLAIN_HOST(host):
            return None
        default = DEFAULT_PORTS.get(scheme)
        if default and host.endswith(default):
            host = host[: -len(default)]
        try:  # WSGI strings carry the raw bytes as latin-1: quote those bytes
            path = quote((environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
                         .encode("latin-1"), safe=PATH_SAFE)
            query = quote(environ.get("QUERY_STRING", "").encode("latin-1"), safe=QUERY_SAFE)
        except UnicodeEncodeError:
            return None
        return f"{scheme}://{host}{path}?{query}" if query else f"{scheme}://{host}{path}"


class HotlineFlask(Flask):
    """Flask, with its request class above and `ensure_sync` answered once per function.

    Flask asks `inspect.iscoroutinefunction` of every hook and view on every request; the answer
    never changes for a function, and a webhook runs five of them. `ensure_sync` is Flask's
    documented override point for how views are run.
    """

    request_class = HotlineRequest

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._sync[func]
        except KeyError:
            sync = self._sync[func] = super().ensure_sync(func)
            return sync
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)
