"""How many submissions the embedder takes per poll.

Wide polls make encoding cheaper: the encoder sorts a poll by length, so each forward pass
pads little (on demo-like text a poll of 256 encoded 16 at a time runs ~2% more tokens than
the texts hold; polls of 64 in arrival order ran ~20% more). But a poll must be encoded well
within the consumer group's max poll interval, or kafka-python leaves the group mid-poll and
the partitions move (a rebalance, and the poll is handled again). 256 texts take ~10 s on two
quiet cores and minutes on a starved machine, so the poll size follows the measured rate.
"""

from __future__ import annotations

__all__ = ["PollSizer"]


class PollSizer:
    """At most `budget_s` of encoding per poll at the recently measured rate, within [smallest, largest]."""

    def __init__(self, *, largest: int, smallest: int, budget_s: float, smoothing: float = 0.5) -> None:
        if not 1 <= smallest <= largest:
            raise ValueError(f"need 1 <= smallest <= largest, got {smallest} and {largest}")
        if budget_s <= 0 or not 0 < smoothing <= 1:
            raise ValueError("budget_s must be positive and smoothing in (0, 1]")
        self.largest = largest
        self.smallest = smallest
        self.budget_s = budget_s
        self.smoothing = smoothing
        self.rate: float | None = None  # texts per second, exponentially smoothed

    def size(self) -> int:
        """The next poll's size: `smallest` until a rate has been measured."""
        if self.rate is None:
            return self.smallest
        return max(self.smallest, min(self.largest, int(self.rate * self.budget_s)))

    def record(self, texts: int, seconds: float) -> None:
        """One handled poll: `texts` embedded and published in `seconds`."""
        if texts <= 0 or seconds <= 0:
            return
        measured = texts / seconds
        self.rate = measured if self.rate is None else self.rate + self.smoothing * (measured - self.rate)
