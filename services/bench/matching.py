"""`salon bench matching` (placeholder module; the benchmark is being built)."""

from __future__ import annotations

from services.bench import bench_app


@bench_app.command("matching")
def bench_matching() -> None:
    """nDCG@10, recall@10 and MRR of the scoring against baselines on the labelled set."""
    raise NotImplementedError("the matching benchmark is not built yet")
