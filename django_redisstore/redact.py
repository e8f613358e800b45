"""Which session keys look secret, and session data with their values hidden.

``manage.py sessions inspect KEY`` shows a session's data with these values replaced by
``REDACTED`` unless ``--show-secrets`` is given. A key is secret when:

* one of its word parts is a short secret word (``key``, ``hash``, ``pin``, ``otp``...), or
  that word with a plural ``s``. Word parts are split at anything that is not a letter or a
  digit and at camelCase humps: ``_auth_user_hash`` is ``auth``, ``user``, ``hash``, and
  ``apiKey`` is ``api``, ``key``;
* or the key, lowercased and without separators, contains a longer secret word (``token``,
  ``secret``, ``password``, ``csrf``...): ``_csrftoken``, ``oauth_refresh_token``,
  ``password_reset_key``, ``sessionId``;
* or it matches one of ``REDISSTORE_REDACT_KEYS``: names or shell-style patterns (``fnmatch``:
  ``*``, ``?``, ``[abc]``), matched against the whole key, case-insensitively.

Short words match only as whole parts, so that ``monkey`` or ``turkey`` stay visible. ``auth``
and ``session`` alone are not secret markers: Django's own ``_auth_user_id``,
``_auth_user_backend`` and ``_session_expiry`` are not secrets (the hash beside them is).
Nested dicts are redacted key by key, at any depth, lists item by item.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted>"

#: Secret when one word part is one of these (or it with an ``s``).
SHORT_WORDS = frozenset(
    {
        "hash", "key", "pin", "pwd", "pw", "otp", "totp", "hotp", "mfa", "ssn", "sid", "mac",
        "salt", "jwt", "cvv", "cvc", "pass", "iban", "seed", "sig",
    }
)  # fmt: skip
#: Secret when the key without separators contains one of these.
LONG_WORDS = (
    "token", "secret", "password", "passwd", "passphrase", "passcode", "csrf", "xsrf",
    "credential", "nonce", "refresh", "signature", "private", "cookie", "bearer", "apikey",
    "authorization", "sessionid", "sessionkey", "recovery", "verifier",
)  # fmt: skip

_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def is_secret(key: str, patterns: Iterable[str] = ()) -> bool:
    """Whether the session key ``key`` looks secret, or matches one of ``patterns``."""
    lowered = key.lower()
    if any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns):
        return True
    joined = _SEPARATORS.sub("", lowered)
    if any(word in joined for word in LONG_WORDS):
        return True
    for part in _PARTS.findall(key):
        part = part.lower()
        if part in SHORT_WORDS or (part.endswith("s") and part[:-1] in SHORT_WORDS):
            return True
    return False


def redact(value: Any, patterns: Iterable[str] = ()) -> Any:
    """``value`` (session data) with the values of secret keys replaced by ``REDACTED``."""
    patterns = tuple(patterns)
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and is_secret(k, patterns) else redact(v, patterns)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item, patterns) for item in value]
    return value
