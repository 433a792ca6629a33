"""Envelopes: round trip, schema validation, deterministic derived ids."""

from __future__ import annotations

import pytest

from shared.errors import PoisonMessageError
from shared.events import Envelope, SubmissionData, VectorData, derived_event_id


def test_envelope_round_trips_with_typed_payload():
    data = SubmissionData(kind="need", entity_id="n1", version=2, owner="鹤岗市人民政府", text="补链 石墨", fields={})
    envelope = Envelope.wrap("need.submitted", "n1", data)
    again = Envelope.from_bytes(envelope.to_bytes())
    assert again == envelope
    assert again.payload() == data
    assert again.subject == "n1" and again.schema_version == 1


def test_wrap_refuses_the_wrong_schema_for_a_type():
    with pytest.raises(TypeError):
        Envelope.wrap(
            "vector.computed",
            "x",
            SubmissionData(kind="pitch", entity_id="x", version=1, owner="o", text="t", fields={}),
        )


@pytest.mark.parametrize("raw", [None, b"", b"not json", b"[]", b'{"type": "pitch.submitted"}'])
def test_malformed_bytes_are_poison(raw):
    with pytest.raises(PoisonMessageError):
        Envelope.from_bytes(raw)


def test_unknown_type_and_bad_data_are_poison():
    with pytest.raises(PoisonMessageError):
        Envelope(type="pitch.exploded", subject="x", data={}).payload()
    with pytest.raises(PoisonMessageError):
        Envelope(type="vector.computed", subject="x", data={"kind": "pitch"}).payload()


def test_newer_schema_version_is_refused_not_misread():
    envelope = Envelope(type="pitch.submitted", subject="x", data={}, schema_version=99)
    with pytest.raises(PoisonMessageError, match="newer"):
        Envelope.from_bytes(envelope.to_bytes())


def test_derived_ids_are_stable_per_source_and_purpose():
    source = Envelope(type="x", subject="s", data={}).id
    assert derived_event_id(source, "vector.computed") == derived_event_id(source, "vector.computed")
    assert derived_event_id(source, "vector.computed") != derived_event_id(source, "other")
    VectorData(kind="pitch", entity_id="e", version=1, model="m", dim=2, vector=[0.0, 1.0], source_event_id=source)
