"""Google-signed OIDC tokens: how a Pub/Sub push subscription authenticates to the HTTP function.

    verifier = push_verifier(audience, accounts, certs_url)   # one per setting, kept
    verifier.check("Bearer eyJ...")        # the service account's email, or None

A push subscription created with `--push-auth-service-account` sends `Authorization: Bearer <JWT>`,
an ID token Google signs (RS256) for that service account, with the subscription's audience
(`--push-auth-token-audience`, else the push endpoint URL). A token is accepted when its signature
verifies against Google's published certificates (google-auth's `jwt.decode`, which also checks
`exp`/`iat` and the audience), its issuer is Google, and its `email` is verified and one of the
configured service accounts. Anything else, including a token over `MAX_TOKEN_BYTES` or a
certificate fetch that fails, is refused (None) with the reason logged, never raised.

Google's certificates (a JSON object of key id to PEM certificate) are fetched on first use,
kept for the response's `max-age` (between 5 minutes and a day), and fetched again early when a
token names a key id they do not hold (Google rotated its keys); never more than once a minute, so
neither made-up key ids nor an unreachable Google cost a fetch per request.
`certs_url` is Google's (config.GOOGLE_CERTS_URL) unless FALCONET_PUSH_CERTS_URL says otherwise
(tests, private mirrors).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.request
from collections.abc import Sequence
from functools import cache
from typing import Any

import orjson

from falconet.errors import ConfigError

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
MAX_TOKEN_BYTES = 8192  # Google's ID tokens are about 1 KiB
MAX_CERTS_BYTES = 256 * 1024
CLOCK_SKEW_S = 30
_MIN_TTL, _MAX_TTL, _DEFAULT_TTL = 300.0, 86400.0, 3600.0
_REFETCH_S = 60.0  # an unknown key id refetches at most this often
_MAX_AGE = re.compile(r"max-age=(\d+)")


def google_auth_available() -> bool:
    """Whether google-auth (with its RSA support) can be imported: checked at the cold start."""
    try:
        from google.auth import crypt, jwt  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def push_verifier(audience: str, accounts: tuple[str, ...], certs_url: str) -> PushVerifier:
    """The process's verifier for these settings (its certificates kept across requests).
    Raises ConfigError when google-auth is not installed."""
    return PushVerifier(audience=audience, accounts=accounts, certs_url=certs_url)


class PushVerifier:
    """Checks Pub/Sub push OIDC tokens for one audience and a list of service accounts."""

    def __init__(
        self,
        *,
        audience: str,
        accounts: Sequence[str],
        certs_url: str,
        timeout: float = 5.0,
    ) -> None:
        if not google_auth_available():
            raise ConfigError(
                "Pub/Sub push tokens are verified with google-auth: "
                "pip install google-auth (functions/requirements.txt has it)"
            )
        self.audience = audience
        self.accounts = frozenset(a.lower() for a in accounts)
        self.certs_url = certs_url
        self.timeout = timeout
        self._lock = threading.Lock()
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._fetched: float | None = None

    def check(self, authorization: str) -> str | None:
        """The verified service-account email of an `Authorization: Bearer <JWT>` value, or None
        (the reason logged)."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_BYTES:
            return None
        try:
            claims = self._decode(token.strip())
        except Exception as exc:  # google-auth raises ValueError and friends; all mean "no"
            log.warning("falconet: push token refused: %s", type(exc).__name__)
            return None
        email = claims.get("email")
        if claims.get("iss") not in GOOGLE_ISSUERS:
            log.warning("falconet: push token refused: not issued by Google")
            return None
        if claims.get("email_verified") is not True or not isinstance(email, str):
            log.warning("falconet: push token refused: no verified email")
            return None
        if email.lower() not in self.accounts:
            log.warning("falconet: push token refused: %s is not an allowed account", email[:254])
            return None
        return email

    def _decode(self, token: str) -> dict[str, Any]:
        from google.auth import jwt

        header = jwt.decode_header(token)  # type: ignore[no-untyped-call]
        kid = header.get("kid") if isinstance(header, dict) else None
        certs = self._certificates(str(kid) if kid is not None else None)
        claims: dict[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
            token, certs=certs, audience=self.audience, clock_skew_in_seconds=CLOCK_SKEW_S
        )
        return claims

    def _certificates(self, kid: str | None) -> dict[str, str]:
        """Google's certificates: fetched when they expired or lack `kid`, at most once a minute
        (a failed fetch too: the ones held are kept, and the failure raised only without any)."""
        with self._lock:
            now = time.monotonic()
            wanted = now >= self._expires or kid not in self._certs
            if wanted and (self._fetched is None or now - self._fetched >= _REFETCH_S):
                self._fetched = now
                try:
                    self._certs, ttl = self._fetch()
                    self._expires = now + ttl
                except Exception as exc:
                    log.warning("falconet: Google's certificates not fetched: %s", exc)
                    if not self._certs:
                        raise
            if not self._certs:
                raise ValueError("Google's certificates are not available yet")
            return self._certs

    def _fetch(self) -> tuple[dict[str, str], float]:
        # An http(s) URL: config checked it (Google's, or FALCONET_PUSH_CERTS_URL).
        request = urllib.request.Request(self.certs_url, headers={"User-Agent": "falconet"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            body = response.read(MAX_CERTS_BYTES + 1)
            cache = response.headers.get("Cache-Control") or ""
        if len(body) > MAX_CERTS_BYTES:
            raise ValueError("the certificates document is over its size limit")
        certs = orjson.loads(body)
        if not isinstance(certs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in certs.items()
        ):
            raise ValueError("the certificates document is not an object of key id to PEM")
        found = _MAX_AGE.search(cache)
        ttl = float(found.group(1)) if found else _DEFAULT_TTL
        return certs, min(max(ttl, _MIN_TTL), _MAX_TTL)
