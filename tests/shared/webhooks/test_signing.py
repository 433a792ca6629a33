"""Standard Webhooks signing: the published test vector, the reference library, one test per failure."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as LibraryVerificationError

from shared.errors import SalonError
from shared.webhooks.signing import (
    InvalidSecretError,
    InvalidTimestampError,
    MissingHeadersError,
    SignatureMismatchError,
    TimestampTooNewError,
    TimestampTooOldError,
    WebhookVerificationError,
    decode_secret,
    generate_secret,
    sign,
    verify,
    webhook_headers,
)

# The example from the Standard Webhooks / Svix documentation.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = '{"type":"match.proposed","data":{"title":"高纯石墨负极材料深加工"}}'.encode()


def signed_now(*secrets: str, body: bytes = BODY, age_s: int = 0) -> dict[str, str]:
    return webhook_headers(list(secrets), "msg_1", int(time.time()) - age_s, body)


def test_the_published_test_vector():
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)


def test_generated_secrets_are_whsec_base64_of_32_random_bytes():
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_") and first != second
    assert len(decode_secret(first)) == 32


def test_the_reference_library_accepts_our_signature_and_refuses_a_changed_byte():
    secret = generate_secret()
    headers = signed_now(secret)
    assert Webhook(secret).verify(BODY, headers)["type"] == "match.proposed"
    changed = BODY.replace(b"match", b"match_")
    with pytest.raises(LibraryVerificationError):
        Webhook(secret).verify(changed, headers)


def test_the_reference_library_refuses_a_timestamp_six_minutes_old():
    secret = generate_secret()
    with pytest.raises(LibraryVerificationError, match="too old"):
        Webhook(secret).verify(BODY, signed_now(secret, age_s=360))


def test_during_a_rotation_either_secret_verifies():
    old, new = generate_secret(), generate_secret()
    headers = signed_now(new, old)
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)
        verify(secret, headers, BODY)
    with pytest.raises(LibraryVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_our_verify_accepts_what_we_sign():
    secret = generate_secret()
    verify(secret, signed_now(secret), BODY)


def test_header_names_are_case_insensitive():
    secret = generate_secret()
    verify(secret, {name.upper(): value for name, value in signed_now(secret).items()}, BODY)


# --- one test per failure mode -----------------------------------------------------------
@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(missing):
    secret = generate_secret()
    headers = signed_now(secret)
    del headers[missing]
    with pytest.raises(MissingHeadersError):
        verify(secret, headers, BODY)


def test_a_timestamp_that_is_not_an_integer_is_refused():
    secret = generate_secret()
    with pytest.raises(InvalidTimestampError):
        verify(secret, {**signed_now(secret), "webhook-timestamp": "yesterday"}, BODY)


def test_a_timestamp_six_minutes_old_is_refused():
    secret = generate_secret()
    with pytest.raises(TimestampTooOldError):
        verify(secret, signed_now(secret, age_s=360), BODY)


def test_a_timestamp_six_minutes_ahead_is_refused():
    secret = generate_secret()
    with pytest.raises(TimestampTooNewError):
        verify(secret, signed_now(secret, age_s=-360), BODY)


def test_a_changed_byte_is_refused():
    secret = generate_secret()
    headers = signed_now(secret)
    with pytest.raises(SignatureMismatchError):
        verify(secret, headers, BODY[:-1] + b"]")


def test_another_secret_is_refused():
    with pytest.raises(SignatureMismatchError):
        verify(generate_secret(), signed_now(generate_secret()), BODY)


def test_signatures_of_unknown_versions_are_ignored_not_trusted():
    secret = generate_secret()
    headers = signed_now(secret)
    forged = {**headers, "webhook-signature": headers["webhook-signature"].replace("v1,", "v2,")}
    with pytest.raises(SignatureMismatchError):
        verify(secret, forged, BODY)
    verify(secret, {**headers, "webhook-signature": "v2,abc " + headers["webhook-signature"]}, BODY)


@pytest.mark.parametrize(
    "secret",
    ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ=", "whsec_" + "A" * 200],
    ids=["no prefix", "not base64", "too short", "too long"],
)
def test_a_malformed_secret_is_refused(secret):
    with pytest.raises(InvalidSecretError):
        sign(secret, "msg_1", 1, BODY)


def test_every_failure_is_a_salon_error():
    assert issubclass(WebhookVerificationError, SalonError) and issubclass(InvalidSecretError, SalonError)
