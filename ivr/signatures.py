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
from collections.abc import Callable, Mapping

from twilio.request_validator import RequestValidator, get_signature_algorithm

log = logging.getLogger(__name__)
SETTINGS_HEADER = "HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS"  # its WSGI environ key


class Signatures:
    def __init__(self, auth_token: str, shared_keys: list[str]) -> None:
        self.auth_token = RequestValidator(auth_token)
        self.shared_keys = [RequestValidator(secret) for secret in shared_keys]
        self._last_warning = float("-inf")

    def valid(self, environ: Mapping[str, str], url_as_sent: str | None,
              full_url: Callable[[], str], params: Mapping[str, str]) -> bool:
        """True when the request's signature is Twilio's, over this URL and these fields.

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
        if url_as_sent is not None and self._matches(validators, url_as_sent, params, signature,
                                                     algorithm):
            return True
        url = full_url()
        return any(v.validate(url, params, signature, algorithm) for v in validators)

    @staticmethod
    def _matches(validators: list[RequestValidator], url: str, params: Mapping[str, str],
                 signature: str, algorithm: str | None) -> bool:
        for validator in validators:
            try:
                expected = validator.compute_signature(url, params, algorithm)
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
