"""`salon up` (what `make run` calls): demo data matched, a working organizer key, clean Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services.launcher import free_port, port_open


def test_salon_up_serves_demo_matches_and_stops_cleanly_on_ctrl_c(tmp_path: Path):
    api_port, broker_port = free_port(), free_port()
    env = {
        **os.environ,
        "SALON_DATA_DIR": str(tmp_path / "var"),
        "SALON_API_PORT": str(api_port),
        "SALON_KAFKA_EMBEDDED_PORT": str(broker_port),
        "SALON_KAFKA_BOOTSTRAP": "",
        "SALON_DATABASE_URL": "",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 300
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "press Ctrl-C to stop" in line:
                break
        text = "".join(output)
        assert "salon is running" in text, text
        key = re.search(r"(salon_org_[A-Za-z0-9_-]+)", text)
        assert key, text
        assert re.search(r"demo data: \d+ submitted", text)

        headers = {"Authorization": f"Bearer {key.group(1)}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=30) as http:
            pitches = http.get("/v1/pitches", params={"limit": 500}).json()
            assert len(pitches) >= 30 and all(p["status"] == "matched" for p in pitches)
            graphite = next(p for p in pitches if "石墨" in p["title"])
            matches = http.get("/v1/matches", params={"subject": graphite["id"]}).json()
            assert matches and matches[0]["reasons"] and matches[0]["explanation"]
            assert http.get("/v1/healthz").json()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert "stopped." in rest
    assert not port_open("127.0.0.1", api_port) and not port_open("127.0.0.1", broker_port)
