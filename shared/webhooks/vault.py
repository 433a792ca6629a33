"""Signing secrets at rest: AES-256-GCM under a key derived from the server pepper.

Deliveries must sign, so secrets are encrypted rather than hashed. The endpoint id is the
associated data: a sealed secret copied onto another endpoint's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.errors import SalonError

_FORMAT = "v1"
_NONCE_BYTES = 12


class SealedSecretError(SalonError):
    """A stored secret cannot be opened (another pepper, another endpoint, or corrupted)."""


def _cipher(pepper: str) -> AESGCM:
    key = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"salon/webhook-secrets/v1").derive(pepper.encode())
    return AESGCM(key)


def seal(secret: str, *, pepper: str, endpoint_id: str) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _cipher(pepper).encrypt(nonce, secret.encode(), endpoint_id.encode())
    return f"{_FORMAT}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(stored: str, *, pepper: str, endpoint_id: str) -> str:
    version, _, encoded = stored.partition(".")
    if version != _FORMAT:
        raise SealedSecretError(f"unknown sealed-secret format {version!r}")
    try:
        raw = base64.urlsafe_b64decode(encoded)
        opened = _cipher(pepper).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], endpoint_id.encode())
    except (binascii.Error, ValueError, InvalidTag) as exc:
        raise SealedSecretError(f"the secret of endpoint {endpoint_id} does not open with this pepper") from exc
    return opened.decode()
