"""The README starts with the two commands and documents every setting."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```", 2)[1]
    assert "make run" in first_block and "make test" in first_block


def test_every_setting_is_documented():
    missing = [f"SALON_{name.upper()}" for name in Settings.model_fields if f"`SALON_{name.upper()}`" not in README]
    assert not missing, f"README lacks {missing}"


def test_documented_numeric_defaults_match_the_settings():
    """The settings table's default column must not drift from `shared/settings.py`."""
    rows = re.findall(r"^\| `SALON_([A-Z0-9_]+)` \| `([^`]*)` \|", README, flags=re.MULTILINE)
    drifted = []
    for name, documented in rows:
        field = Settings.model_fields.get(name.lower())
        if field is None or not isinstance(field.default, int | float) or isinstance(field.default, bool):
            continue
        try:
            value = float(documented.replace("_", ""))
        except ValueError:
            continue  # an expression such as `1024 * 1024` or `5 × 86400`: not compared
        if value != float(field.default):
            drifted.append(f"SALON_{name}: README {documented}, settings {field.default}")
    assert not drifted, drifted
