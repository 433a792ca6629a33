"""The event types a webhook endpoint can subscribe to.

Each is delivered only to the participant it concerns (e.g. `match.proposed` to the owner
of each side of the match). Only `match.proposed` is produced today; the session and
follow-up types are reserved so that subscriptions need no change when those land.
"""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "match.proposed": "A match involving one of your submissions was proposed, with its score and reasons.",
    "match.shortlisted": "An organizer shortlisted a match involving one of your submissions.",
    "session.invited": "You are invited to a closed-door session.",
    "session.updated": "A session you are invited to changed (date, place, agenda).",
    "session.cancelled": "A session you are invited to was cancelled.",
    "followup.recorded": "A follow-up after a session you took part in was recorded.",
}

# Sent by `POST /v1/webhooks/endpoints/{id}/test` whatever the subscription.
TEST_EVENT = "webhook.test"


def unknown_types(event_types: list[str]) -> list[str]:
    return [event_type for event_type in event_types if event_type not in EVENT_TYPES]
