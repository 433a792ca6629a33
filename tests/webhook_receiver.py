"""A real HTTP receiver on 127.0.0.1 for webhook tests: records every request it gets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers every POST with `answer(request) -> status` (204 by default)."""

    def __init__(self, answer: Callable[[Received], int] | None = None) -> None:
        self.requests: list[Received] = []
        self.answer = answer or (lambda _request: 204)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: no HTTP server hands this on
                    self.close_connection = True
                    return
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                receiver.requests.append(request)
                status = receiver.answer(request)
                # A 204 has no body: writing one anyway puts its bytes in front of the next
                # response on the kept-alive connection, which a correct client rejects.
                reply = b"" if status == 204 else b"ok" if status < 300 else b"verification failed"
                self.send_response(status)
                if status != 204:
                    self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: object) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/salon"

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.requests)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
