"""The README starts with the two commands and documents every setting."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```", 2)[1]
    assert "make run" in first_block and "make test" in first_block


def test_every_setting_is_documented():
    missing = [f"SALON_{name.upper()}" for name in Settings.model_fields if f"`SALON_{name.upper()}`" not in README]
    assert not missing, f"README lacks {missing}"
