"""Check X-Twilio-Signature: signed with the account's Auth Token, or with a SharedKey.

By default Twilio signs every webhook with the Auth Token, as HMAC-SHA1. When a Webhook Rule
(Twilio's webhooks configuration API, in public beta) matches the hotline's URLs, Twilio signs with
that rule's SharedKey and algorithm instead, and says so in X-Twilio-Webhooks-Signature-Settings
(`key=<id>,algorithm=HMAC_SHA256`); the signed string is the same. Without this, turning such a rule
on would make every call fail its signature check. TWILIO_WEBHOOK_SHARED_KEYS holds the secret, or
several (old and new) while a key is being rotated. The check itself is twilio-python's
`RequestValidator.validate`, called as Twilio documents it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from twilio.request_validator import RequestValidator, get_signature_algorithm

log = logging.getLogger(__name__)
# What twilio-python 9.13 can check; for any other name `validate` logs a warning on every request.
ALGORITHMS = ("HMAC_SHA1", "HMAC_SHA256")


class Signatures:
    def __init__(self, auth_token: str, shared_keys: list[str]) -> None:
        self.auth_token = RequestValidator(auth_token)
        self.shared_keys = [RequestValidator(secret) for secret in shared_keys]
        self._last_warning = float("-inf")

    def valid(
        self, url: str, params: Mapping[str, str], signature: str, settings: str | None
    ) -> bool:
        """True when `signature` is Twilio's over `url` and the form fields `params`.

        `settings` is the X-Twilio-Webhooks-Signature-Settings header: present, the request was
        signed with a SharedKey and the algorithm it names; absent, with the Auth Token.
        """
        if not signature:
            return False
        if settings is None:
            return self.auth_token.validate(url, params, signature)
        algorithm = get_signature_algorithm(settings)
        if not self.shared_keys:
            self._refuse(settings, "TWILIO_WEBHOOK_SHARED_KEYS is not set")
            return False
        if algorithm.upper() not in ALGORITHMS:
            self._refuse(settings, "its algorithm is not one twilio-python knows")
            return False
        return any(v.validate(url, params, signature, algorithm) for v in self.shared_keys)

    def _refuse(self, settings: str, why: str) -> None:
        """Say loudly, but once a minute per process, that SharedKey-signed calls are refused
        (anyone can send the header, so it must not flood the log)."""
        now = time.monotonic()
        if now - self._last_warning < 60:
            return
        self._last_warning = now
        log.error(
            "a webhook says Twilio signed it with a SharedKey (%s), and %s: such calls are refused",
            settings[:200],
            why,
        )
