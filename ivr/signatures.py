"""Check X-Twilio-Signature: signed with the account's Auth Token, or with a SharedKey.

By default Twilio signs every webhook with the Auth Token, as HMAC-SHA1. When a Webhook Rule
(Twilio's webhooks configuration API, in public beta) matches the hotline's URLs, Twilio signs with
that rule's SharedKey and algorithm instead, and says so in X-Twilio-Webhooks-Signature-Settings
(`key=<id>,algorithm=HMAC_SHA256`); the signed string is the same. Without this, turning such a rule
on would make every call fail its signature check. TWILIO_WEBHOOK_SHARED_KEYS holds the secret, or
several (old and new) while a key is being rotated. All hashing is twilio-python's RequestValidator.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from twilio.request_validator import RequestValidator, get_signature_algorithm

log = logging.getLogger(__name__)
SETTINGS_HEADER = "HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS"  # its WSGI environ key


def signed_fields(pairs: Iterable[tuple[str, str]]) -> str:
    """The fields as Twilio's signature covers them, to follow the URL: each name then its value,
    names in order and each name's values in order, every (name, value) once.

    twilio-python's `compute_signature(url, params)` makes the same string with a Python loop per
    field, then the HMAC; a call's ~25 fields made that loop most of the check. Here the string is
    one sort and one join, and `compute_signature(url + fields, None)` does the HMAC, so the hash
    is still twilio-python's. If this string ever differed from what Twilio signed, the HMAC would
    not match and `validate` would decide: it can only make a genuine request slower, never let
    a forged one through. tests/test_signatures.py checks it equals twilio-python's on random
    fields.
    """
    return "".join(map("".join, sorted(set(pairs))))


class Signatures:
    def __init__(self, auth_token: str, shared_keys: list[str]) -> None:
        self.auth_token = RequestValidator(auth_token)
        self.shared_keys = [RequestValidator(secret) for secret in shared_keys]
        self._last_warning = float("-inf")

    def valid(self, environ: Mapping[str, str], url_as_sent: str | None,
              full_url: Callable[[], str], params: Mapping[str, str],
              pairs: Iterable[tuple[str, str]]) -> bool:
        """True when the request's signature is Twilio's, over this URL and these fields.

        `params` are the fields as a multidict, `pairs` the same fields as (name, value) pairs.
        First the URL exactly as sent (one HMAC, the common case); only when that fails,
        `RequestValidator.validate`, which also tries the URL with and without its port, as
        Twilio's own signing is inconsistent about ports.
        """
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        if not signature:
            return False
        settings = environ.get(SETTINGS_HEADER)
        if settings is None:
            validators, algorithm = [self.auth_token], None
        else:
            algorithm = get_signature_algorithm(settings)
            validators = self.shared_keys
            if not validators:
                self._missing_keys(settings)
                return False
        if url_as_sent is not None and self._matches(
            validators, url_as_sent + signed_fields(pairs), signature, algorithm
        ):
            return True
        url = full_url()
        return any(v.validate(url, params, signature, algorithm) for v in validators)

    @staticmethod
    def _matches(validators: list[RequestValidator], signed: str, signature: str,
                 algorithm: str | None) -> bool:
        for validator in validators:
            try:
                expected = validator.compute_signature(signed, None, algorithm)
            except ValueError:  # an algorithm twilio-python does not know: validate() says so
                return False
            # Bytes: compare_digest refuses str with non-ASCII characters; a header may hold any.
            if hmac.compare_digest(expected.encode(), signature.encode()):
                return True
        return False

    def _missing_keys(self, settings: str) -> None:
        """Say loudly, but once a minute per process, that SharedKey-signed calls are refused
        (anyone can send the header, so it must not flood the log)."""
        now = time.monotonic()
        if now - self._last_warning < 60:
            return
        self._last_warning = now
        log.error("a webhook says Twilio signed it with a SharedKey (%s), and "
                  "TWILIO_WEBHOOK_SHARED_KEYS is not set: such calls are refused", settings[:200])
