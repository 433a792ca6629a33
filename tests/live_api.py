"""The API app served by a real uvicorn server on a thread, for tests that need real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from services.api.main import create_app
from shared.settings import Settings


@contextmanager
def serve_api(settings: Settings) -> Iterator[str]:
    """Serve `create_app(settings)` (relay off) on `settings.api_port`; yields the base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, background=False), host="127.0.0.1", port=settings.api_port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.api_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
