"""Where benchmark figures go: one JSON file and one PNG plot per benchmark.

Every `salon bench …` that produces figures worth keeping calls `save_results`. The default
folder is `shared/bench/results/` in the repository, so the figures the README quotes are the
files committed next to it; tests pass a temporary folder.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or in CI

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["DEFAULT_RESULTS_DIR", "Plotter", "machine_description", "save_results"]

DEFAULT_RESULTS_DIR = Path(__file__).resolve().parents[2] / "shared" / "bench" / "results"

Plotter = Callable[[Figure, Mapping[str, Any]], None]


def machine_description() -> dict[str, Any]:
    """What the figures were measured on; ratios only compare runs on the same machine."""
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def save_results(
    name: str,
    figures: Mapping[str, Any],
    *,
    results_dir: Path = DEFAULT_RESULTS_DIR,
    plot: Plotter | None = None,
) -> list[Path]:
    """Write `<results_dir>/<name>.json` (figures + machine + time) and, given `plot`, `<name>.png`.

    `plot` draws on a fresh matplotlib figure; titles and labels are the caller's.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_description(),
        "figures": figures,
    }
    json_path = results_dir / f"{name}.json"
    json_path.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    written = [json_path]
    if plot is not None:
        figure = plt.figure(figsize=(8, 4.5), dpi=100)
        try:
            plot(figure, figures)
            figure.tight_layout()
            png_path = results_dir / f"{name}.png"
            figure.savefig(png_path)
            written.append(png_path)
        finally:
            plt.close(figure)
    return written
