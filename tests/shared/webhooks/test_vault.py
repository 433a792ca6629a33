"""Secrets at rest: sealed, recoverable with the server pepper only, bound to their endpoint."""

from __future__ import annotations

import pytest

from shared.webhooks.signing import generate_secret
from shared.webhooks.vault import SealedSecretError, seal, unseal

PEPPER = "vault-test-pepper-0123456789"


def test_a_sealed_secret_opens_with_the_same_pepper_and_endpoint():
    secret = generate_secret()
    sealed = seal(secret, pepper=PEPPER, endpoint_id="ep_1")
    assert secret not in sealed and secret.removeprefix("whsec_") not in sealed
    assert unseal(sealed, pepper=PEPPER, endpoint_id="ep_1") == secret


def test_sealing_twice_gives_different_ciphertexts():
    secret = generate_secret()
    assert seal(secret, pepper=PEPPER, endpoint_id="ep_1") != seal(secret, pepper=PEPPER, endpoint_id="ep_1")


@pytest.mark.parametrize(
    ("pepper", "endpoint_id"), [("another-pepper-0123456789", "ep_1"), (PEPPER, "ep_2")], ids=["pepper", "endpoint"]
)
def test_another_pepper_or_endpoint_does_not_open_it(pepper, endpoint_id):
    sealed = seal(generate_secret(), pepper=PEPPER, endpoint_id="ep_1")
    with pytest.raises(SealedSecretError):
        unseal(sealed, pepper=pepper, endpoint_id=endpoint_id)


@pytest.mark.parametrize("stored", ["v1.not-base64!!", "v1.AAAA", "v0.AAAA", ""])
def test_corrupted_values_are_refused(stored):
    with pytest.raises(SealedSecretError):
        unseal(stored, pepper=PEPPER, endpoint_id="ep_1")
