"""The embedder's poll size follows its encode rate, so a poll ends well within the max poll interval."""

from __future__ import annotations

import pytest

from services.embedder.pacing import PollSizer


def test_starts_small_then_takes_what_the_budget_allows():
    sizer = PollSizer(largest=256, smallest=16, budget_s=10.0)
    assert sizer.size() == 16, "no rate measured yet: one forward pass"
    sizer.record(16, 0.8)  # 20 texts/s → 200 texts in 10 s
    assert sizer.size() == 200
    for _ in range(10):
        sizer.record(200, 4.0)  # 50 texts/s: capped at the largest poll
    assert sizer.size() == 256


def test_a_starved_machine_gets_small_polls_and_never_below_one_forward_pass():
    sizer = PollSizer(largest=256, smallest=16, budget_s=10.0, smoothing=1.0)
    sizer.record(256, 128.0)  # 2 texts/s: a poll of 256 would take two minutes
    assert sizer.size() == 20
    sizer.record(20, 100.0)  # 0.2 texts/s
    assert sizer.size() == 16


def test_the_rate_is_smoothed_and_empty_polls_are_ignored():
    sizer = PollSizer(largest=1000, smallest=1, budget_s=1.0, smoothing=0.5)
    sizer.record(100, 1.0)
    sizer.record(0, 0.0)
    sizer.record(10, 0.0)
    assert sizer.size() == 100
    sizer.record(50, 1.0)
    assert sizer.size() == 75


@pytest.mark.parametrize(
    "kwargs",
    [
        {"largest": 8, "smallest": 16, "budget_s": 1.0},
        {"largest": 8, "smallest": 0, "budget_s": 1.0},
        {"largest": 8, "smallest": 1, "budget_s": 0.0},
        {"largest": 8, "smallest": 1, "budget_s": 1.0, "smoothing": 0.0},
    ],
)
def test_nonsense_limits_are_refused(kwargs):
    with pytest.raises(ValueError):
        PollSizer(**kwargs)
