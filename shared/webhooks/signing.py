"""Standard Webhooks signatures (https://www.standardwebhooks.com), modelled on its reference library.

Headers: `webhook-id` (the receiver's idempotency key, stable across retries),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`:
`v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>`, space-separated when
several secrets sign (during a rotation), so a receiver holding either one verifies.
A secret is `whsec_` + base64 of 24–64 random bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as random_source
import time
from collections.abc import Mapping, Sequence

from shared.errors import SalonError

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SECRET_MIN_BYTES, SECRET_MAX_BYTES = 24, 64
SIGNATURE_VERSION = "v1"
TOLERANCE_S = 300  # receivers refuse timestamps more than 5 minutes away (replay protection)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class WebhookSigningError(SalonError):
    """Base class of signing and verification failures."""


class InvalidSecretError(WebhookSigningError):
    """The secret is not `whsec_` + base64 of 24–64 bytes."""


class WebhookVerificationError(WebhookSigningError):
    """A received webhook must not be trusted (base class of the reasons below)."""


class MissingHeadersError(WebhookVerificationError):
    """`webhook-id`, `webhook-timestamp` or `webhook-signature` is absent or empty."""


class InvalidTimestampError(WebhookVerificationError):
    """`webhook-timestamp` is not an integer number of seconds."""


class TimestampTooOldError(WebhookVerificationError):
    """The timestamp is further in the past than the tolerance (a replayed request)."""


class TimestampTooNewError(WebhookVerificationError):
    """The timestamp is further in the future than the tolerance."""


class SignatureMismatchError(WebhookVerificationError):
    """No `v1` signature in the header matches the body under this secret."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(random_source.token_bytes(SECRET_BYTES)).decode()


def decode_secret(secret: str) -> bytes:
    """The key bytes of a `whsec_…` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecretError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecretError("a webhook secret is base64 after its prefix") from exc
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise InvalidSecretError(f"a webhook secret holds {SECRET_MIN_BYTES}–{SECRET_MAX_BYTES} bytes, not {len(key)}")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `body` for this message id and timestamp."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    if not secrets:
        raise InvalidSecretError("at least one secret must sign")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def webhook_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_header(secrets, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> None:
    """Raise a WebhookVerificationError unless `body` was signed with `secret` recently."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(ID_HEADER, "")
    raw_timestamp = lowered.get(TIMESTAMP_HEADER, "")
    signatures = lowered.get(SIGNATURE_HEADER, "")
    if not (msg_id and raw_timestamp and signatures):
        raise MissingHeadersError(f"{ID_HEADER}, {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
    try:
        timestamp = int(raw_timestamp)
    except ValueError as exc:
        raise InvalidTimestampError(f"{TIMESTAMP_HEADER} is not an integer: {raw_timestamp[:40]!r}") from exc
    current = time.time() if now is None else now
    if timestamp < current - tolerance_s:
        raise TimestampTooOldError(f"timestamp is {current - timestamp:.0f}s old (tolerance {tolerance_s}s)")
    if timestamp > current + tolerance_s:
        raise TimestampTooNewError(f"timestamp is {timestamp - current:.0f}s ahead (tolerance {tolerance_s}s)")
    expected = sign(secret, msg_id, timestamp, body).encode()
    for candidate in signatures.split():
        # Constant-time comparison; signatures of other versions are skipped, not errors.
        if candidate.startswith(f"{SIGNATURE_VERSION},") and hmac.compare_digest(candidate.encode(), expected):
            return
    raise SignatureMismatchError("no v1 signature matches")
