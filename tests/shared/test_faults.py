"""Crash points for fault tests: parsed strictly, inert by default, refused in production,
and a real SIGKILL at the N-th arrival."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from shared import faults
from shared.errors import ConfigurationError
from shared.settings import Settings


def test_only_the_named_services_points_are_armed_with_their_counts():
    spec = "matcher.after_effect_before_commit@3, embedder.after_effect_before_commit"
    assert faults.parse(spec, "matcher") == {"after_effect_before_commit": 3}
    assert faults.parse(spec, "embedder") == {"after_effect_before_commit": 1}
    assert faults.parse(spec, "api") == {}
    assert faults.parse("", "matcher") == {}


@pytest.mark.parametrize(
    "spec", ["matcher.no_such_point", "matcher.between_phases@0", "matcher.between_phases@x", "matcher"]
)
def test_a_mistyped_point_fails_loudly(spec):
    with pytest.raises(ConfigurationError, match="SALON_FAULT_INJECT"):
        faults.parse(spec, "matcher")


def test_production_refuses_fault_injection():
    with pytest.raises(ConfigurationError, match="SALON_FAULT_INJECT"):
        Settings(
            environment="production",
            database_url="postgresql://db/salon",
            kafka_bootstrap="kafka:9092",
            api_key_pepper="a-real-secret-0123456789abcdef",
            fault_inject="matcher.between_phases",
        )


def test_an_unarmed_point_does_nothing():
    faults.configure("", "matcher")
    faults.reach("after_effect_before_commit")  # still alive


def test_the_process_is_killed_at_the_nth_arrival():
    script = (
        "from shared import faults\n"
        "faults.configure('worker.between_phases@2', 'worker')\n"
        "faults.reach('between_phases'); print('survived the first', flush=True)\n"
        "faults.reach('between_phases'); print('survived the second', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == "survived the first\n"
    assert "FAULT-INJECT worker.between_phases" in done.stderr
